//! The run log (the only module that sets up `tracing`): every event goes to
//! `<out>/bugsmith.log` once a command names its output directory (appended, each run headed
//! by its command line), and events at the chosen level to stderr: warnings by default,
//! errors only with `-q`, progress with `-v`, details with `-vv`. Events with the target
//! [`RECORD`] (what the terminal already shows its own way) go to the file only.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, filter::LevelFilter};

static FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// The target of events written to the log file only.
pub const RECORD: &str = "record";

/// Writes to the run's log file, when one is open.
#[derive(Clone, Copy)]
struct RunFile;

impl Write for RunFile {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match FILE.lock().ok().as_mut().and_then(|f| f.as_mut()) {
            Some(file) => file.write(bytes),
            None => Ok(bytes.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match FILE.lock().ok().as_mut().and_then(|f| f.as_mut()) {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl<'a> MakeWriter<'a> for RunFile {
    type Writer = RunFile;
    fn make_writer(&'a self) -> RunFile {
        RunFile
    }
}

/// Installs the logger: stderr at the level `-v`/`-q` chose, the run file at debug.
pub fn init(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => LevelFilter::ERROR,
        (false, 0) => LevelFilter::WARN,
        (false, 1) => LevelFilter::INFO,
        (false, _) => LevelFilter::DEBUG,
    };
    let stderr =
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).without_time().with_target(false).with_filter(
            tracing_subscriber::filter::filter_fn(move |meta| meta.target() != RECORD && level >= *meta.level()),
        );
    let file = tracing_subscriber::fmt::layer().with_writer(RunFile).with_ansi(false).with_filter(LevelFilter::DEBUG);
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(stderr).with(file));
}

/// Opens `<out>/bugsmith.log` for this run (appending) and writes the command line first.
pub fn to_file(out: &Path) {
    if std::fs::create_dir_all(out).is_err() {
        return;
    }
    let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(out.join("bugsmith.log")) else {
        return;
    };
    let args: Vec<String> = std::env::args().collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let _ = writeln!(file, "==== {} (pid {}, unix time {now})", args.join(" "), std::process::id());
    if let Ok(mut slot) = FILE.lock() {
        *slot = Some(file);
    }
}
