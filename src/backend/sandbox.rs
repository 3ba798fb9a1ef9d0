//! The local backend's sandbox (the only module that runs bubblewrap or touches cgroups): each
//! candidate runs in fresh user, mount, pid, network, IPC and UTS namespaces — the host's
//! filesystem read-only but for the work tree and the scratch folder, a size-limited `/tmp`
//! of its own, no network but its own loopback, not root, killed with its parent — and, where
//! this process may make cgroups (root), in a memory and pids cgroup of the worker's own.
//! Elsewhere memory and processes fall back to `ulimit` (see SECURITY.md).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{BackendError, Result};
use crate::profile::Limits;

/// bubblewrap, found and checked to work here.
#[derive(Clone, Debug)]
pub struct Bubblewrap {
    program: PathBuf,
    as_root: bool,
}

/// Finds `bwrap` on `PATH` and checks it can make the namespaces; the error says how to get it.
pub fn find() -> Result<Bubblewrap> {
    let program = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("bwrap"))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            BackendError(
                "the local sandbox needs bubblewrap (`bwrap`), which is not installed: install it \
                 (apt install bubblewrap) or pass --no-sandbox to run tests unsandboxed"
                    .into(),
            )
        })?;
    let as_root = is_root();
    let bwrap = Bubblewrap { program, as_root };
    let mut probe = bwrap.base_args();
    probe.extend(["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"].map(String::from));
    let out = Command::new(&bwrap.program).args(&probe).stdin(Stdio::null()).output();
    match out {
        Ok(out) if out.status.success() => Ok(bwrap),
        Ok(out) => Err(BackendError(format!(
            "bubblewrap cannot make a sandbox here ({}); allow user namespaces or pass --no-sandbox",
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
        Err(e) => Err(BackendError(format!("cannot run {}: {e}", bwrap.program.display()))),
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// What a sandboxed command may see and write.
pub struct Mounts<'a> {
    /// Writable: the work tree and the scratch folder.
    pub writable: Vec<&'a Path>,
    /// Readable even when under `/tmp` (which the sandbox replaces): the environment.
    pub readable: Vec<&'a Path>,
    /// Working directory.
    pub chdir: &'a Path,
}

impl Bubblewrap {
    fn base_args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "--die-with-parent",
            "--new-session",
            "--unshare-user",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--disable-userns",
        ]
        .map(String::from)
        .to_vec();
        if self.as_root {
            // Started as root: the tests run as nobody.
            args.extend(["--uid", "65534", "--gid", "65534"].map(String::from));
        }
        args
    }

    /// `bash -c script` inside a sandbox with `mounts`; `cgroup` (when there is one) is joined
    /// before the sandbox starts, so everything in it is counted.
    pub fn command(&self, script: &str, mounts: &Mounts<'_>, limits: &Limits, cgroup: Option<&Cgroup>) -> Command {
        let mut args = self.base_args();
        let display = |p: &Path| p.display().to_string();
        args.extend(["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"].map(String::from));
        args.extend(["--size".into(), limits.tmp.to_string(), "--tmpfs".into(), "/tmp".into()]);
        for path in &mounts.readable {
            args.extend(["--ro-bind".into(), display(path), display(path)]);
        }
        for path in &mounts.writable {
            args.extend(["--bind".into(), display(path), display(path)]);
        }
        args.extend(["--chdir".into(), display(mounts.chdir)]);
        if self.as_root {
            args.extend(["--setenv", "USER", "nobody", "--setenv", "LOGNAME", "nobody"].map(String::from));
        }
        args.extend(["--unsetenv".into(), "BUGSMITH_CGROUPS".into(), "bash".into(), "-c".into(), script.into()]);
        // A shell joins the cgroups, then becomes bwrap (so no process starts outside them).
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#"for g in $BUGSMITH_CGROUPS; do echo $$ > "$g/cgroup.procs" || exit 125; done; exec "$@""#)
            .arg("sh")
            .arg(&self.program)
            .args(args)
            .env("BUGSMITH_CGROUPS", cgroup.map(Cgroup::procs_dirs).unwrap_or_default());
        command
    }
}

/// A worker's memory and pids cgroup (v1 controllers or the v2 tree); removed when dropped.
#[derive(Debug)]
pub struct Cgroup {
    dirs: Vec<PathBuf>,
    oom_file: PathBuf,
}

impl Cgroup {
    /// Makes `bugsmith-<name>` with the limits, when this process may (root, a writable
    /// hierarchy); `None` otherwise.
    pub fn create(name: &str, limits: &Limits) -> Option<Cgroup> {
        let root = Path::new("/sys/fs/cgroup");
        let group = format!("bugsmith-{name}");
        if root.join("cgroup.controllers").is_file() {
            let dir = root.join(&group);
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+memory +pids");
            std::fs::create_dir_all(&dir).ok()?;
            let cgroup = Cgroup { dirs: vec![dir.clone()], oom_file: dir.join("memory.events") };
            let written = std::fs::write(dir.join("memory.max"), limits.memory.to_string()).is_ok()
                && std::fs::write(dir.join("pids.max"), limits.pids.to_string()).is_ok();
            let _ = std::fs::write(dir.join("memory.swap.max"), "0");
            return written.then_some(cgroup);
        }
        let memory = root.join("memory").join(&group);
        let pids = root.join("pids").join(&group);
        std::fs::create_dir_all(&memory).ok()?;
        let cgroup = Cgroup { dirs: vec![memory.clone()], oom_file: memory.join("memory.oom_control") };
        std::fs::write(memory.join("memory.limit_in_bytes"), limits.memory.to_string()).ok()?;
        let _ = std::fs::write(memory.join("memory.memsw.limit_in_bytes"), limits.memory.to_string());
        std::fs::create_dir_all(&pids).ok()?;
        let mut cgroup = cgroup;
        cgroup.dirs.push(pids.clone());
        std::fs::write(pids.join("pids.max"), limits.pids.to_string()).ok()?;
        Some(cgroup)
    }

    fn procs_dirs(&self) -> String {
        self.dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(" ")
    }

    /// The file with the `oom_kill N` counter (the runner reads it).
    pub fn oom_file(&self) -> &Path {
        &self.oom_file
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for dir in &self.dirs {
            // Empty by now (the sandbox is gone); a cgroup directory is removed with rmdir.
            let _ = std::fs::remove_dir(dir);
        }
    }
}
