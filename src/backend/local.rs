//! The `local` backend: a virtualenv per profile under the cache, and a private clone of the
//! installed checkout per worker. Each candidate runs in a sandbox of its own (`sandbox`:
//! namespaces, read-only host, limits) unless `--no-sandbox` says otherwise.
//!
//! The virtualenv's editable install points at the build checkout, so workers put their own
//! clone first on `PYTHONPATH` (its root, and `src/` when the package uses that layout).

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use super::owner::Owner;
use super::sandbox::{self, Bubblewrap, Cgroup, Mounts};
use super::{Backend, BackendError, Containment, Exec, ExecOutput, FREEZE_INSTALLED_STATE, Result, Worker, check_step};
use crate::profile::{Limits, Profile};
use crate::source::Checkout;

/// Virtualenvs and worker clones live under `<cache>/local/`.
pub struct LocalBackend {
    root: PathBuf,
    containment: Containment,
    /// bubblewrap, looked for when the first sandboxed worker starts.
    bubblewrap: OnceLock<std::result::Result<Bubblewrap, String>>,
    live: Arc<Mutex<Live>>,
    swept: OnceLock<()>,
    _on_interrupt: crate::interrupt::Registration,
}

/// What Ctrl-C must stop and remove.
#[derive(Default)]
struct Live {
    /// Process groups of running commands.
    running: HashSet<u32>,
    /// Worker folders (clone, scratch).
    workers: HashSet<PathBuf>,
}

/// The file in a worker folder naming the process that made it.
const OWNER_FILE: &str = "owner";

impl LocalBackend {
    /// A backend keeping its environments under `cache`, sandboxed with default limits.
    pub fn new(cache: &Path) -> LocalBackend {
        let live: Arc<Mutex<Live>> = Arc::default();
        let on_interrupt = crate::interrupt::on_interrupt({
            let live = live.clone();
            move || {
                let mut live = live.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let running: Vec<u32> = live.running.drain().collect();
                for pid in &running {
                    // The sandbox's bubblewrap: killed, it takes the whole sandbox with it.
                    kill_process(*pid);
                }
                let workers: Vec<PathBuf> = live.workers.drain().collect();
                for dir in &workers {
                    let _ = std::fs::remove_dir_all(dir);
                }
                (!workers.is_empty()).then(|| {
                    format!("stopped {} test run(s) and removed {} worker clone(s)", running.len(), workers.len())
                })
            }
        });
        LocalBackend {
            root: cache.join("local"),
            containment: Containment::default(),
            bubblewrap: OnceLock::new(),
            live,
            swept: OnceLock::new(),
            _on_interrupt: on_interrupt,
        }
    }

    /// The same backend with these containment settings.
    pub fn with_containment(mut self, containment: Containment) -> LocalBackend {
        self.containment = containment;
        self
    }

    /// Removes worker folders left by runs that are gone (killed before they could clean up).
    fn sweep_dead_workers(&self, workers: &Path) {
        let Ok(entries) = std::fs::read_dir(workers) else { return };
        for entry in entries.flatten() {
            let owner = std::fs::read_to_string(entry.path().join(OWNER_FILE)).ok();
            if owner.as_deref().and_then(Owner::parse).is_some_and(|o| o.is_stale()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    fn sandbox(&self) -> Result<Option<Bubblewrap>> {
        if !self.containment.sandbox {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                crate::console::warn(
                    "--no-sandbox: tests run as this user, with its network and its files (see SECURITY.md)",
                );
            });
            return Ok(None);
        }
        match self.bubblewrap.get_or_init(|| sandbox::find().map_err(|e| e.0)) {
            Ok(found) => Ok(Some(found.clone())),
            Err(e) => Err(BackendError(e.clone())),
        }
    }

    fn env_dir(&self, profile: &Profile) -> PathBuf {
        self.root.join("envs").join(format!("{}-{}", profile.repo_name, profile.env_hash()))
    }

    /// Refreshes `testbed/` beside the virtualenv: a clone of the mirror with every instance
    /// branch, for agents working locally (`source <env>/env.sh` puts the venv and the clone
    /// first). `None` when the profile has no local environment.
    pub fn refresh_testbed(&self, profile: &Profile, mirror: &Path) -> Result<Option<PathBuf>> {
        let dir = self.env_dir(profile);
        if !dir.join("ready").exists() {
            return Ok(None);
        }
        let testbed = dir.join("testbed");
        let lock_path = dir.join("testbed.lock");
        let lock = std::fs::File::create(&lock_path).map_err(io_error(lock_path.display()))?;
        lock.lock().map_err(io_error(lock_path.display()))?;
        crate::git::clone_with_branches(mirror, &testbed).map_err(|e| BackendError(e.to_string()))?;
        let mut python_path = testbed.display().to_string();
        if testbed.join("src").is_dir() {
            python_path = format!("{}:{python_path}", testbed.join("src").display());
        }
        let script = format!(
            "# bugsmith: the environment of {} with the mirror clone first on PYTHONPATH\nexport VIRTUAL_ENV={venv}\nexport PATH={venv}/bin:$PATH\nexport PYTHONPATH={python_path}\ncd {testbed}\n",
            profile.repo_name,
            venv = dir.join("venv").display(),
            testbed = testbed.display(),
        );
        std::fs::write(dir.join("env.sh"), script).map_err(io_error(dir.display()))?;
        Ok(Some(testbed))
    }
}

/// SIGKILL to the process group `pid` leads (the command and whatever it started in it).
/// Through kill(2), not the `kill` program: procps 4.0.2 reads `kill -KILL -1234` as `-1`
/// (every process the caller may signal).
fn kill_group(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid)
        && pid > 1
    {
        // SAFETY: kill(2) with a negative pid (a group) touches no memory of ours.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// SIGKILL to one process (never a group, never pid 0 or 1).
fn kill_process(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid)
        && pid > 1
    {
        // SAFETY: kill(2) with a positive pid touches no memory of ours.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

fn io_error(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> BackendError {
    move |e| BackendError(format!("{what}: {e}"))
}

/// Environment variables that make a shell use the virtualenv.
fn venv_env(venv: &Path) -> Vec<(String, String)> {
    let path = std::env::var("PATH").unwrap_or_default();
    vec![
        ("PATH".into(), format!("{}:{path}", venv.join("bin").display())),
        ("VIRTUAL_ENV".into(), venv.display().to_string()),
        ("PIP_DISABLE_PIP_VERSION_CHECK".into(), "1".into()),
    ]
}

/// Variables passed on from this process: what shells, pip and TLS need, nothing else (no
/// tokens or credentials reach the code under test).
fn inherited_env() -> Vec<(String, String)> {
    const NAMES: &[&str] = &[
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "TZ",
        "TERM",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
    ];
    std::env::vars()
        .filter(|(k, _)| NAMES.contains(&k.as_str()) || k.starts_with("PIP_") || k.starts_with("LC_"))
        .collect()
}

/// Runs a shell command with a hard timeout, killing its whole process group when exceeded.
fn run(script: &str, dir: &Path, env: &[(String, String)], timeout: Duration) -> Result<ExecOutput> {
    let mut command = Command::new("bash");
    command.arg("-c").arg(script).current_dir(dir);
    run_command(command, env, timeout, None)
}

/// Runs `command` (its own process group, only `env` and what [`inherited_env`] passes on) with
/// a hard timeout; the group is registered in `live` while it runs, so Ctrl-C can stop it.
fn run_command(
    mut command: Command,
    env: &[(String, String)],
    timeout: Duration,
    live: Option<&Mutex<Live>>,
) -> Result<ExecOutput> {
    use std::os::unix::process::CommandExt;
    let started = Instant::now();
    let saved: Vec<(String, String)> =
        command.get_envs().filter_map(|(k, v)| Some((k.to_str()?.to_string(), v?.to_str()?.to_string()))).collect();
    let mut child = command
        .env_clear()
        .envs(inherited_env())
        .envs(saved)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(io_error("cannot start bash"))?;
    let pid = child.id();
    if let Some(live) = live
        && let Ok(mut live) = live.lock()
    {
        live.running.insert(pid);
    }
    let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let err_reader = std::thread::spawn(move || {
            let mut err = Vec::new();
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_end(&mut err);
            }
            err
        });
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut out);
        }
        out.extend(err_reader.join().unwrap_or_default());
        let _ = sender.send(out);
    });
    let output = match receiver.recv_timeout(timeout) {
        Ok(out) => Some(out),
        Err(_) => {
            kill_group(pid);
            None
        }
    };
    let status = child.wait().map_err(io_error("cannot wait for bash"))?;
    if let Some(live) = live
        && let Ok(mut live) = live.lock()
    {
        live.running.remove(&pid);
    }
    let timed_out = output.is_none();
    let output = output.or_else(|| receiver.recv_timeout(Duration::from_secs(5)).ok()).unwrap_or_default();
    Ok(ExecOutput {
        exit_code: status.code().map(i64::from),
        output: String::from_utf8_lossy(&output).into_owned(),
        duration: started.elapsed(),
        timed_out,
    })
}

impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn build_env(&self, profile: &Profile, checkout: &Checkout, log_dir: &Path) -> Result<String> {
        let dir = self.env_dir(profile);
        let id = format!("local:{}", dir.display());
        if dir.join("ready").exists() {
            return Ok(id);
        }
        // One build at a time per environment (other processes wait, then find it ready).
        std::fs::create_dir_all(self.root.join("envs")).map_err(io_error(self.root.display()))?;
        let lock_path = dir.with_extension("lock");
        let lock = std::fs::File::create(&lock_path).map_err(io_error(lock_path.display()))?;
        lock.lock().map_err(io_error(lock_path.display()))?;
        if dir.join("ready").exists() {
            return Ok(id);
        }
        std::fs::create_dir_all(log_dir).map_err(io_error(log_dir.display()))?;
        // Built in place (virtualenvs and editable installs cannot move); `ready` marks success.
        let _ = std::fs::remove_dir_all(&dir);
        let src = dir.join("src");
        crate::git::clone(&checkout.root.display().to_string(), &src, None).map_err(|e| BackendError(e.to_string()))?;
        let mut log = String::new();
        let python = find_python(&profile.python_version);
        let venv = dir.join("venv");
        let mut steps = vec![format!("{python} -m venv {}", venv.display())];
        steps.extend(profile.install.iter().cloned());
        steps.push(super::tooling_step());
        steps.push(FREEZE_INSTALLED_STATE.to_string());
        let mut env = venv_env(&venv);
        env.extend(profile.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        for step in &steps {
            let out = run(step, &src, &env, Duration::from_secs(profile.timeout_ref.max(600)))?;
            check_step("environment build", step, &out, &mut log, &log_dir.join("build_env.log"))?;
        }
        std::fs::write(log_dir.join("build_env.log"), &log).map_err(io_error(log_dir.display()))?;
        std::fs::write(dir.join("ready"), profile.env_hash()).map_err(io_error(dir.display()))?;
        Ok(id)
    }

    fn start_worker<'a>(
        &'a self,
        profile: &Profile,
        _checkout: &Checkout,
        index: usize,
    ) -> Result<Box<dyn Worker + 'a>> {
        if crate::interrupt::interrupted() {
            return Err(BackendError("interrupted".into()));
        }
        let env_dir = self.env_dir(profile);
        if !env_dir.join("ready").exists() {
            return Err(BackendError(format!(
                "no environment for {}: run `bugsmith env build` first",
                profile.repo_name
            )));
        }
        let bubblewrap = self.sandbox()?;
        let workers = self.root.join("workers");
        std::fs::create_dir_all(&workers).map_err(io_error(workers.display()))?;
        self.swept.get_or_init(|| self.sweep_dead_workers(&workers));
        let home = tempfile::Builder::new()
            .prefix(&format!("{}-{index}-", profile.repo_name))
            .tempdir_in(&workers)
            .map_err(io_error(workers.display()))?;
        std::fs::write(home.path().join(OWNER_FILE), Owner::current().to_text())
            .map_err(io_error(home.path().display()))?;
        if let Ok(mut live) = self.live.lock() {
            live.workers.insert(home.path().to_path_buf());
        }
        let repo = home.path().join("repo");
        crate::git::clone(&env_dir.join("src").display().to_string(), &repo, None)
            .map_err(|e| BackendError(e.to_string()))?;
        let scratch = home.path().join("scratch");
        std::fs::create_dir_all(&scratch).map_err(io_error(scratch.display()))?;
        let limits = self.containment.limits.resolve(&profile.limits);
        let mut env = venv_env(&env_dir.join("venv"));
        let mut python_path = repo.display().to_string();
        if repo.join("src").is_dir() {
            python_path = format!("{}:{python_path}", repo.join("src").display());
        }
        env.push(("PYTHONPATH".into(), python_path));
        env.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
        let cgroup = bubblewrap.as_ref().and_then(|_| {
            let name = home.path().file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            Cgroup::create(&format!("{}-{name}", std::process::id()), &limits)
        });
        let mut ulimits = format!("f:{}", limits.file_size / 1024);
        if cgroup.is_none() {
            ulimits.push_str(&format!(" v:{}", limits.memory / 1024));
            if !sandbox::is_root() {
                ulimits.push_str(&format!(" u:{}", limits.pids));
            }
        }
        env.push(("ULIMITS".into(), ulimits));
        if bubblewrap.is_some() {
            env.push(("SWEEP".into(), "1".into()));
            env.push(("CANDIDATE_ROOT".into(), "/tmp/.bugsmith-candidate".into()));
        } else {
            let sentinel = home.path().join("sentinel");
            std::fs::write(&sentinel, "bugsmith").map_err(io_error(sentinel.display()))?;
            env.push(("SENTINEL".into(), sentinel.display().to_string()));
        }
        if let Some(cgroup) = &cgroup {
            env.push(("OOM_FILE".into(), cgroup.oom_file().display().to_string()));
        }
        env.extend(profile.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let sandbox = bubblewrap.map(|bwrap| Sandboxed { bwrap, cgroup, env_dir: env_dir.clone(), limits });
        let mut worker = LocalWorker { home: Some(home), repo, scratch, env, sandbox, live: &self.live };
        worker.check_imports_from_clone()?;
        Ok(Box::new(worker))
    }
}

/// The importable top-level package (or module) of a checkout: a folder with `__init__.py`
/// under `src/`, `lib/`, `python/` or the root, else a root-level module; tests, docs and setup
/// files left out.
fn top_level_module(repo: &Path) -> Option<String> {
    let mut found = Vec::new();
    for base in [repo.join("src"), repo.join("lib"), repo.join("python"), repo.to_path_buf()] {
        let Ok(entries) = std::fs::read_dir(&base) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let path = entry.path();
            let package = path.is_dir() && path.join("__init__.py").is_file();
            let module = path.is_file() && name.ends_with(".py");
            let skip = name.starts_with(['.', '_'])
                || ["setup.py", "conftest.py", "noxfile.py", "tests", "test", "docs", "examples"]
                    .contains(&name.as_str())
                || crate::ast::is_test_path(&name);
            if !skip && (package || module) {
                found.push((u8::from(!package), name.trim_end_matches(".py").to_string()));
            }
        }
        if !found.is_empty() {
            break;
        }
    }
    found.sort();
    found.into_iter().next().map(|(_, name)| name)
}

impl LocalWorker<'_> {
    /// The tests must import the code in this clone (which the patches change), not the build
    /// checkout the virtualenv was installed from. Checked on the package a checkout has; a
    /// package that does not import at all is left for the baseline to report.
    fn check_imports_from_clone(&mut self) -> Result<()> {
        let Some(module) = top_level_module(&self.repo) else { return Ok(()) };
        let script = format!("python -c 'import {module}, os; print(os.path.realpath({module}.__file__))' 2>/dev/null");
        let out =
            self.exec(&Exec { script, env: Vec::new(), timeout: Duration::from_secs(60), want_exit_code: true })?;
        let imported = out.output.trim();
        let clone = std::fs::canonicalize(&self.repo).unwrap_or_else(|_| self.repo.clone());
        if out.exit_code == Some(0) && !imported.is_empty() && !Path::new(imported).starts_with(&clone) {
            return Err(BackendError(format!(
                "the tests would import `{module}` from {imported}, not from the worker's checkout {}: \
                 set `env: {{PYTHONPATH: <folder holding {module}>}}` in the profile (relative folders are \
                 taken from the checkout)",
                clone.display()
            )));
        }
        Ok(())
    }
}

/// `python<version>` when this machine has it, else `python3`.
fn find_python(version: &str) -> String {
    let candidate = format!("python{version}");
    let works = Command::new(&candidate).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if works.is_ok_and(|s| s.success()) { candidate } else { "python3".into() }
}

struct LocalWorker<'a> {
    /// Removed when the worker is dropped.
    home: Option<tempfile::TempDir>,
    repo: PathBuf,
    scratch: PathBuf,
    env: Vec<(String, String)>,
    sandbox: Option<Sandboxed>,
    live: &'a Mutex<Live>,
}

/// A worker's sandbox: bubblewrap, its cgroup (when one could be made), what it may read.
struct Sandboxed {
    bwrap: Bubblewrap,
    cgroup: Option<Cgroup>,
    env_dir: PathBuf,
    limits: Limits,
}

impl Worker for LocalWorker<'_> {
    fn workdir(&self) -> String {
        self.repo.display().to_string()
    }

    fn scratch(&self) -> String {
        self.scratch.display().to_string()
    }

    fn exec(&mut self, exec: &Exec) -> Result<ExecOutput> {
        let mut env = self.env.clone();
        env.extend(exec.env.iter().cloned());
        let command = match &self.sandbox {
            Some(sandbox) => {
                let mounts = Mounts {
                    writable: vec![&self.repo, &self.scratch],
                    readable: vec![&sandbox.env_dir],
                    chdir: &self.repo,
                };
                sandbox.bwrap.command(&exec.script, &mounts, &sandbox.limits, sandbox.cgroup.as_ref())
            }
            None => {
                let mut command = Command::new("bash");
                command.arg("-c").arg(&exec.script).current_dir(&self.repo);
                command
            }
        };
        let out = run_command(command, &env, exec.timeout, Some(self.live))?;
        if self.sandbox.is_some() && out.exit_code == Some(125) && out.output.trim().is_empty() {
            return Err(BackendError("cannot join the worker's cgroup".into()));
        }
        Ok(out)
    }

    fn run_candidate(
        &mut self,
        files: &[(&str, &str)],
        env: Vec<(String, String)>,
        timeout: Duration,
    ) -> Result<ExecOutput> {
        for (name, text) in files {
            let path = self.scratch.join(name);
            std::fs::write(&path, text).map_err(io_error(path.display()))?;
        }
        self.exec(&Exec { script: super::RUNNER.to_string(), env, timeout, want_exit_code: false })
    }
}

impl Drop for LocalWorker<'_> {
    fn drop(&mut self) {
        if let Some(home) = self.home.take() {
            if let Ok(mut live) = self.live.lock() {
                live.workers.remove(home.path());
            }
            drop(home);
        }
    }
}
