//! The `local` backend: a virtualenv per profile under the cache, and a private clone of the
//! installed checkout per worker. No isolation beyond that: use `docker` for code you do not trust.
//!
//! The virtualenv's editable install points at the build checkout, so workers put their own
//! clone first on `PYTHONPATH` (its root, and `src/` when the package uses that layout).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Backend, BackendError, Exec, ExecOutput, FREEZE_INSTALLED_STATE, Result, Worker, check_step};
use crate::profile::Profile;
use crate::source::Checkout;

/// Virtualenvs and worker clones live under `<cache>/local/`.
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    /// A backend keeping its environments under `cache`.
    pub fn new(cache: &Path) -> LocalBackend {
        LocalBackend { root: cache.join("local") }
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
    use std::os::unix::process::CommandExt;
    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env_clear()
        .envs(inherited_env())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(io_error("cannot start bash"))?;
    let pid = child.id();
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
            let _ = Command::new("kill").args(["-KILL", &format!("-{pid}")]).status();
            None
        }
    };
    let status = child.wait().map_err(io_error("cannot wait for bash"))?;
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
        let env_dir = self.env_dir(profile);
        if !env_dir.join("ready").exists() {
            return Err(BackendError(format!(
                "no environment for {}: run `bugsmith env build` first",
                profile.repo_name
            )));
        }
        let workers = self.root.join("workers");
        std::fs::create_dir_all(&workers).map_err(io_error(workers.display()))?;
        let home = tempfile::Builder::new()
            .prefix(&format!("{}-{index}-", profile.repo_name))
            .tempdir_in(&workers)
            .map_err(io_error(workers.display()))?;
        let repo = home.path().join("repo");
        crate::git::clone(&env_dir.join("src").display().to_string(), &repo, None)
            .map_err(|e| BackendError(e.to_string()))?;
        let scratch = home.path().join("scratch");
        std::fs::create_dir_all(&scratch).map_err(io_error(scratch.display()))?;
        let sentinel = home.path().join("sentinel");
        std::fs::write(&sentinel, "bugsmith").map_err(io_error(sentinel.display()))?;
        let mut env = venv_env(&env_dir.join("venv"));
        let mut python_path = repo.display().to_string();
        if repo.join("src").is_dir() {
            python_path = format!("{}:{python_path}", repo.join("src").display());
        }
        env.push(("PYTHONPATH".into(), python_path));
        env.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
        env.push(("SENTINEL".into(), sentinel.display().to_string()));
        env.extend(profile.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut worker = LocalWorker { _home: home, repo, scratch, env };
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

impl LocalWorker {
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

struct LocalWorker {
    /// Removed when the worker is dropped.
    _home: tempfile::TempDir,
    repo: PathBuf,
    scratch: PathBuf,
    env: Vec<(String, String)>,
}

impl Worker for LocalWorker {
    fn workdir(&self) -> String {
        self.repo.display().to_string()
    }

    fn scratch(&self) -> String {
        self.scratch.display().to_string()
    }

    fn exec(&mut self, exec: &Exec) -> Result<ExecOutput> {
        let mut env = self.env.clone();
        env.extend(exec.env.iter().cloned());
        run(&exec.script, &self.repo, &env, exec.timeout)
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
