//! The terminal: the only module that names `indicatif`. Progress bars on stderr (hidden when
//! stderr is not a terminal or `BUGSMITH_NO_PROGRESS` is set) and the closing summaries.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::{Problem, Progress};

/// `-q`: no status lines, warnings or progress bars.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Sets `-q` for the whole process.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Problems printed in full during a run; the rest are only counted.
pub const SHOWN_PROBLEMS: usize = 20;

/// A progress bar that also prints problems above itself.
pub struct Bar {
    bar: ProgressBar,
    shown: Mutex<usize>,
}

impl Bar {
    /// A bar on stderr, hidden when quiet or not on a terminal.
    pub fn new(quiet: bool) -> Bar {
        let target = if quiet || self::quiet() || std::env::var_os("BUGSMITH_NO_PROGRESS").is_some() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>28.bold} [{bar:30}] {pos}/{len} {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Bar { bar, shown: Mutex::new(0) }
    }

    /// Removes the bar from the screen.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
        let shown = *self.shown.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if shown > SHOWN_PROBLEMS {
            eprintln!("… and {} more problems (see the summary or --json)", shown - SHOWN_PROBLEMS);
        }
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: u64) {
        self.bar.set_prefix(name.to_string());
        self.bar.set_length(total);
        self.bar.set_position(0);
    }

    fn advance(&self, n: u64) {
        self.bar.inc(n);
    }

    fn note(&self, text: &str) {
        self.bar.set_message(text.to_string());
    }

    fn problem(&self, problem: &Problem) {
        tracing::warn!(target: crate::log::RECORD, "{problem}");
        let mut shown = self.shown.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *shown += 1;
        if *shown <= SHOWN_PROBLEMS && !quiet() {
            self.bar.suspend(|| eprintln!("warning: {problem}"));
        }
    }
}

/// A one-line status on stderr (only on a terminal, and not when `quiet`).
pub fn status(quiet: bool, message: &str) {
    use std::io::IsTerminal;
    tracing::info!(target: crate::log::RECORD, "{message}");
    if !quiet && !self::quiet() && std::env::var_os("BUGSMITH_NO_PROGRESS").is_none() && std::io::stderr().is_terminal()
    {
        eprintln!("{message}");
    }
}

/// Writes a diff to stdout, coloured (added green, removed red, hunk headers cyan) when
/// stdout is a terminal and `NO_COLOR` is unset.
pub fn print_diff(diff: &str) {
    use std::io::IsTerminal;
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    for line in diff.lines() {
        let code = match line.as_bytes().first() {
            _ if !colour => None,
            _ if line.starts_with("+++") || line.starts_with("---") || line.starts_with("diff ") => Some("1"),
            Some(b'+') => Some("32"),
            Some(b'-') => Some("31"),
            Some(b'@') => Some("36"),
            _ => None,
        };
        match code {
            Some(code) => println!("\x1b[{code}m{line}\x1b[0m"),
            None => println!("{line}"),
        }
    }
}

/// Clears the terminal (only when stdout is one), so each `--watch` run starts on a clean screen.
pub fn clear_screen() {
    use std::io::{IsTerminal, Write};
    if std::io::stdout().is_terminal() {
        print!("\x1b[2J\x1b[H");
        let _ = std::io::stdout().flush();
    } else {
        // Piped output gets a separator between runs instead.
        println!("\n=====");
    }
}

/// A warning: recorded in the run log, and printed as `warning: …` unless `-q`.
pub fn warn(message: &str) {
    tracing::warn!(target: crate::log::RECORD, "{message}");
    if !quiet() {
        eprintln!("warning: {message}");
    }
}
