//! Where tests run. One narrow trait — put files, run a command with env vars and a timeout,
//! read files — so a Kubernetes pod backend fits later. Two backends: `local` (virtualenvs and
//! private checkouts on this machine) and `docker` (one image per repo@commit, warm containers).
//!
//! Everything a candidate needs happens in one command (see `runner.sh`): apply the patch, run
//! the tests under `timeout`, print the results between markers, reset the work tree and check
//! that nothing outside it was touched. One round trip per candidate keeps the overhead low.

pub mod docker;
pub mod local;
pub mod owner;
pub mod sandbox;

use std::path::Path;
use std::time::Duration;

use crate::profile::Profile;
use crate::source::Checkout;

/// A backend failed (not a test failing: the machinery).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// Shorthand.
pub type Result<T> = std::result::Result<T, BackendError>;

pub use crate::settings::Containment;

/// The environment-build step that installs bugsmith's own tooling after the profile's
/// install: coverage.py (unless the repository's install brought one, whose version then
/// stays) and the pytest plugin `bugsmith_pytest`. A failed coverage install is reported in
/// the build log and leaves validation to run whole suites.
pub fn tooling_step() -> String {
    use base64::Engine as _;
    let plugin = base64::engine::general_purpose::STANDARD.encode(crate::profile::PYTEST_PLUGIN);
    format!(
        "python -c 'import coverage' 2>/dev/null || python -m pip install -q 'coverage>=5' || echo 'bugsmith: coverage.py not installed: whole suites will run'; \
         site=$(python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])') && echo {plugin} | base64 -d > \"$site/bugsmith_pytest.py\""
    )
}

/// A command to run in a worker.
#[derive(Clone, Debug)]
pub struct Exec {
    /// Shell script (bash).
    pub script: String,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Hard limit; past it the command is abandoned (local: killed) and the worker must not be
    /// reused.
    pub timeout: Duration,
    /// Whether the caller needs the exit status (a round trip more for some backends).
    pub want_exit_code: bool,
}

/// What a command did.
#[derive(Clone, Debug)]
pub struct ExecOutput {
    /// Exit status, `None` when killed.
    pub exit_code: Option<i64>,
    /// stdout, then stderr (the runner sends everything to stdout).
    pub output: String,
    /// Wall time.
    pub duration: Duration,
    /// The hard limit was hit.
    pub timed_out: bool,
}

/// One warm environment that runs many candidates, one at a time.
pub trait Worker: Send {
    /// The repository's directory in the worker (`/testbed` in containers).
    fn workdir(&self) -> String;
    /// A private directory outside the work tree for patches and result files.
    fn scratch(&self) -> String;
    /// Runs a command in the work tree.
    fn exec(&mut self, exec: &Exec) -> Result<ExecOutput>;
    /// Writes `files` (name, text) into the scratch directory and runs [`RUNNER`] with these
    /// variables. Backends where starting a command is costly keep one runner session open and
    /// feed it requests instead.
    fn run_candidate(
        &mut self,
        files: &[(&str, &str)],
        env: Vec<(String, String)>,
        timeout: Duration,
    ) -> Result<ExecOutput>;
}

/// An environment builder and worker factory.
pub trait Backend: Sync {
    /// `local` or `docker`.
    fn name(&self) -> &'static str;
    /// Builds (or finds) the environment for the profile; the build log goes to `log_dir`.
    /// Idempotent: an environment for the same profile content is reused. Returns its id.
    fn build_env(&self, profile: &Profile, checkout: &Checkout, log_dir: &Path) -> Result<String>;
    /// Starts a worker on a built environment.
    fn start_worker<'a>(&'a self, profile: &Profile, checkout: &Checkout, index: usize)
    -> Result<Box<dyn Worker + 'a>>;
}

/// The script that validates one candidate inside a worker (see module docs).
pub const RUNNER: &str = include_str!("runner.sh");

/// Commands run after the install commands: record the installed state as a commit, so a
/// reset (`git reset --hard; git clean -fdx`) returns to exactly it.
pub const FREEZE_INSTALLED_STATE: &str = "git add -A -f . >/dev/null 2>&1; git -c user.name=bugsmith -c user.email=bugsmith@localhost -c commit.gpgsign=false commit -q --allow-empty -m 'bugsmith: installed state' --date='1970-01-01T00:00:00Z'";

/// Records one install step's output in `log`; when the step failed, saves the log to
/// `log_path` and returns an error naming the step, how it ended and its last lines.
pub fn check_step(what: &str, step: &str, out: &ExecOutput, log: &mut String, log_path: &Path) -> Result<()> {
    log.push_str(&format!("$ {step}\n{}", out.output));
    if !out.timed_out && out.exit_code == Some(0) {
        return Ok(());
    }
    let _ = std::fs::write(log_path, log.as_bytes());
    let ended = if out.timed_out {
        "timed out".to_string()
    } else {
        out.exit_code.map_or("killed".to_string(), |c| format!("exit {c}"))
    };
    Err(BackendError(format!(
        "{what} failed at `{step}` ({ended}); log: {}\n{}",
        log_path.display(),
        tail(&out.output, 15)
    )))
}

/// The last lines of a text, for error messages.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
