//! Fault injection: candidates written as a hostile user would, on both backends, against the
//! `hostile` fixture (whose tests fail when state carries over between candidates). Each case
//! here once broke a verdict or escaped a worker; see SECURITY.md for what is promised.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bugsmith, bugsmith_in, docker_ready, manifest, patch_of, shared_cache, stderr};
use serde_json::Value;

/// The `hostile` fixture with a profile and an empty candidate folder.
struct Hostile {
    dir: tempfile::TempDir,
    profile: PathBuf,
    repo_name: String,
    candidates: PathBuf,
}

const MUL_TESTS: [&str; 2] = ["tests/test_calc.py::test_mul", "tests/test_calc.py::test_mul_one"];

fn hostile() -> Hostile {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile.yaml");
    let source = manifest().join("tests/fixtures/repos/hostile");
    let init =
        bugsmith(&["profile", "init", source.to_str().unwrap(), "-o", profile.to_str().unwrap()], &shared_cache());
    assert!(init.status.success(), "{}", stderr(&init));
    let text = std::fs::read_to_string(&profile).unwrap();
    let repo_name = text.lines().find_map(|l| l.strip_prefix("repo_name: ")).unwrap().to_string();
    let candidates = dir.path().join("candidates");
    std::fs::create_dir_all(&candidates).unwrap();
    Hostile { dir, profile, repo_name, candidates }
}

impl Hostile {
    /// A candidate whose `function` in `hostile/calc.py` gets `body` (indented 4 spaces).
    fn candidate(&self, id: &str, function: &str, body: &str) {
        let checkout = shared_cache().join("checkouts").join(&self.repo_name);
        let head = format!("def {function}(");
        let patch = patch_of(&checkout, "hostile/calc.py", |text| {
            let start = text.find(&head).unwrap();
            let line_end = start + text[start..].find('\n').unwrap() + 1;
            let next = text[line_end..].find("\n\n\n").map_or(text.len(), |at| line_end + at + 1);
            let body: String = body.lines().map(|l| format!("    {l}\n")).collect();
            format!("{}{body}{}", &text[..line_end], &text[next..])
        });
        assert!(!patch.is_empty(), "{id}: the edit changed nothing");
        std::fs::write(self.candidates.join(format!("bug__{id}.diff")), patch).unwrap();
    }

    fn out(&self, backend: &str) -> PathBuf {
        self.dir.path().join(format!("out-{backend}"))
    }

    fn args<'a>(&'a self, backend: &'a str, out: &'a Path) -> Vec<&'a str> {
        vec![
            "validate",
            self.profile.to_str().unwrap(),
            "--backend",
            backend,
            "--out",
            out.to_str().unwrap(),
            "--candidates",
            self.candidates.to_str().unwrap(),
            "--json",
        ]
    }

    fn validate(&self, backend: &str, extra: &[&str]) -> Output {
        let out = self.out(backend);
        let mut args = self.args(backend, &out);
        args.extend_from_slice(extra);
        bugsmith_in(&args, &shared_cache(), Some(self.dir.path()))
    }

    /// `bugsmith validate` started in the background.
    fn spawn_validate(&self, backend: &str, extra: &[&str]) -> Child {
        let out = self.out(backend);
        let mut args = self.args(backend, &out);
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_bugsmith"))
            .args(args)
            .env("BUGSMITH_STRATEGIES", manifest().join("strategies"))
            .env("BUGSMITH_CACHE", shared_cache())
            .env("BUGSMITH_NO_PROGRESS", "1")
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn reports(&self, backend: &str) -> BTreeMap<String, Value> {
        let dir = self.out(backend).join("run_validation").join(&self.repo_name);
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("report.json").exists())
            .map(|p| {
                let report: Value =
                    serde_json::from_str(&std::fs::read_to_string(p.join("report.json")).unwrap()).unwrap();
                let id = report["instance_id"].as_str().unwrap();
                (id.rsplit_once('.').unwrap().1.to_string(), report)
            })
            .collect()
    }

    /// Whether the baseline of this backend's run is recorded.
    fn baseline_done(&self, backend: &str) -> bool {
        self.out(backend)
            .join("run_validation")
            .join(&self.repo_name)
            .join(format!("{}.ref", self.repo_name))
            .join("baseline.json")
            .exists()
    }
}

/// The backends to try: local always, Docker when a daemon and the base image are there.
fn backends() -> Vec<&'static str> {
    if docker_ready() { vec!["local", "docker"] } else { vec!["local"] }
}

fn f2p(report: &Value) -> Vec<&str> {
    report["FAIL_TO_PASS"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect()
}

fn p2p(report: &Value) -> Vec<&str> {
    report["PASS_TO_PASS"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect()
}

/// The mul candidates must come out exactly right, whatever ran before them in the worker.
fn assert_exact_mul(reports: &BTreeMap<String, Value>, id: &str, backend: &str) {
    let report = &reports[id];
    assert_eq!(report["verdict"], "valid", "{backend} {id}: {report:#}");
    assert_eq!(f2p(report), MUL_TESTS, "{backend} {id}: {report:#}");
    for test in ["test_add", "test_port_is_free", "test_no_marker_left", "test_not_root"] {
        assert!(
            p2p(report).contains(&format!("tests/test_calc.py::{test}").as_str()),
            "{backend} {id}: {test}: {report:#}"
        );
    }
}

fn mul_candidates(hostile: &Hostile, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let id = format!("z_mul__{i:08}");
            hostile.candidate(&id, "mul", &format!("return a * b + {}", i + 1));
            id
        })
        .collect()
}

/// Processes whose command line holds `marker`, on this machine.
fn processes_with(marker: &str) -> Vec<String> {
    let out = Command::new("pgrep").args(["-a", "-f", marker]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.contains("pgrep")).map(str::to_string).collect()
}

#[test]
fn processes_a_candidate_leaves_running_die_with_it_and_later_verdicts_stay_exact() {
    for backend in backends() {
        let hostile = hostile();
        let marker = format!("hostile-leak-{}-{backend}", std::process::id());
        hostile.candidate(
            "a_leak__00000000",
            "add",
            &format!(
                r#"import os, subprocess, sys
if not os.environ.get("HOSTILE_CHILD"):
    os.environ["HOSTILE_CHILD"] = "1"
    rewrite = "import time, pathlib; time.sleep(1.0); pathlib.Path('conftest.py').write_text('import pytest\n@pytest.fixture(autouse=True)\ndef _boom():\n    raise RuntimeError(1)\n')"
    subprocess.Popen([sys.executable, "-c", rewrite, "{marker}"], start_new_session=True, cwd=os.getcwd())
    server = "import socket, time; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', 47613)); s.listen(); time.sleep(120)"
    subprocess.Popen([sys.executable, "-c", server, "{marker}"], start_new_session=True)
    subprocess.Popen(["setsid", "sh", "-c", "sleep 120 # {marker}"])
return a - b"#
            ),
        );
        let later = mul_candidates(&hostile, 5);
        let output = hostile.validate(backend, &["-j", "1"]);
        assert!(output.status.success(), "{backend}: {}", stderr(&output));
        let reports = hostile.reports(backend);
        let leak = &reports["a_leak__00000000"];
        assert!(leak["leaked_processes"].as_u64().unwrap_or(0) >= 3, "{backend}: {leak:#}");
        for id in &later {
            assert_exact_mul(&reports, id, backend);
        }
        assert!(processes_with(&marker).is_empty(), "{backend}: left running: {:?}", processes_with(&marker));
    }
}

#[test]
fn nothing_a_candidate_writes_outside_the_work_tree_reaches_the_next_one_or_the_host() {
    let host_home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    for backend in backends() {
        let hostile = hostile();
        let tag = format!("{}-{backend}", std::process::id());
        let host_paths = [format!("{host_home}/.hostile-host-{tag}"), format!("/tmp/hostile-host-{tag}")];
        hostile.candidate(
            "a_write__00000000",
            "add",
            &format!(
                r#"import os
for path in [os.path.expanduser("~/.hostile-marker"), "/tmp/hostile-marker", "/dev/shm/hostile-marker",
             os.path.join(os.environ.get("TMPDIR", "/tmp"), "x"), os.path.join(os.getcwd(), "..", "hostile-outside-{tag}"),
             "{}", "{}"]:
    try:
        with open(path, "w") as f:
            f.write("left behind")
    except OSError:
        pass
return a - b"#,
                host_paths[0], host_paths[1]
            ),
        );
        // 100 MiB into $HOME must hit the 64 MiB temporary space: then (only then) `add` breaks.
        hostile.candidate(
            "b_fill__00000000",
            "add",
            "import os\ntry:\n    with open(os.path.expanduser('~/big'), 'wb') as f:\n        f.write(b'x' * (100 << 20))\nexcept OSError:\n    return a - b\nreturn a + b",
        );
        let later = mul_candidates(&hostile, 2);
        let output = hostile.validate(backend, &["-j", "1", "--tmp", "64m"]);
        assert!(output.status.success(), "{backend}: {}", stderr(&output));
        let reports = hostile.reports(backend);
        assert_eq!(reports["a_write__00000000"]["verdict"], "valid", "{backend}");
        assert_eq!(reports["b_fill__00000000"]["verdict"], "valid", "{backend}: $HOME is not bounded");
        for id in &later {
            assert_exact_mul(&reports, id, backend);
        }
        for path in &host_paths {
            assert!(!Path::new(path).exists(), "{backend}: the candidate wrote {path} on the host");
        }
        assert!(!Path::new("/tmp/hostile-marker").exists(), "{backend}: the candidate wrote the host's /tmp");
    }
}

#[test]
fn suites_that_die_early_are_errors_with_their_reason_never_valid() {
    for backend in backends() {
        let hostile = hostile();
        hostile.candidate("a_exit__00000000", "add", "import os\nos._exit(0)");
        hostile.candidate("b_memory__00000000", "add", "x = 'x' * (3 << 30)\nreturn len(x)");
        hostile.candidate("c_segfault__00000000", "add", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)");
        let later = mul_candidates(&hostile, 1);
        let output = hostile.validate(backend, &["-j", "1", "--memory", "1g"]);
        assert!(output.status.success(), "{backend}: {}", stderr(&output));
        let reports = hostile.reports(backend);
        let exit = &reports["a_exit__00000000"];
        assert_eq!(
            (exit["verdict"].as_str(), exit["error_kind"].as_str()),
            (Some("error"), Some("incomplete")),
            "{backend}: {exit:#}"
        );
        assert!(f2p(exit).is_empty(), "tests that never ran are not F2P: {exit:#}");
        assert_eq!(exit["exit_code"], 0);
        assert_eq!(exit["exit_code_agrees"], false, "exit 0 with tests missing disagrees");
        let memory = &reports["b_memory__00000000"];
        // Without a cgroup (not root) the limit is an rlimit: Python raises MemoryError instead.
        if backend == "docker" || bugsmith::backend::sandbox::is_root() {
            assert_eq!(
                (memory["verdict"].as_str(), memory["error_kind"].as_str()),
                (Some("error"), Some("oom")),
                "{backend}: {memory:#}"
            );
        } else {
            eprintln!("note: not root, so the local memory limit is an rlimit; only checking the run survived");
            assert!(memory["verdict"].is_string());
        }
        let segfault = &reports["c_segfault__00000000"];
        assert_eq!(
            (segfault["verdict"].as_str(), segfault["error_kind"].as_str()),
            (Some("error"), Some("signal")),
            "{backend}: {segfault:#}"
        );
        assert_exact_mul(&reports, &later[0], backend);
        // Final: a resumed run does not try them again.
        let again = hostile.validate(backend, &["-j", "1", "--memory", "1g"]);
        let summary: Value = serde_json::from_slice(&again.stdout).unwrap();
        assert_eq!(summary["ran"], 0, "{backend}: {summary:#}");
    }
}

#[test]
fn the_local_sandbox_refuses_the_hosts_network_and_spares_its_processes() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let mut bystander = Command::new("sleep").arg("300").spawn().unwrap();
    let hostile = hostile();
    hostile.candidate(
        "a_network__00000000",
        "add",
        &format!(
            r#"import socket
for address in [("127.0.0.1", {port}), ("1.1.1.1", 80)]:
    try:
        socket.create_connection(address, timeout=2).close()
    except OSError:
        pass
return a - b"#
        ),
    );
    hostile.candidate("b_kill_all__00000000", "add", "import os, signal\nos.kill(-1, signal.SIGKILL)");
    let later = mul_candidates(&hostile, 1);
    let output = hostile.validate("local", &["-j", "1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let reports = hostile.reports("local");
    assert_eq!(reports["a_network__00000000"]["verdict"], "valid");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a test reached the host's loopback"
    );
    assert_eq!(reports["b_kill_all__00000000"]["verdict"], "error");
    assert!(bystander.try_wait().unwrap().is_none(), "kill(-1) inside the sandbox reached a host process");
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    assert_exact_mul(&reports, &later[0], "local");
}

/// Worker folders under the shared cache made by process `pid`.
fn worker_folders_of(pid: u32) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(shared_cache().join("local/workers")) else { return Vec::new() };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            std::fs::read_to_string(p.join("owner"))
                .ok()
                .and_then(|t| bugsmith::backend::owner::Owner::parse(&t))
                .is_some_and(|o| o.pid == pid)
        })
        .collect()
}

/// Containers whose owner label names process `pid`.
fn containers_of(pid: u32) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-a", "--filter", "label=bugsmith.owner", "--format", "{{.ID}} {{.Label \"bugsmith.owner\"}}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split(' ').nth(1).and_then(bugsmith::backend::owner::Owner::parse).is_some_and(|o| o.pid == pid))
        .map(str::to_string)
        .collect()
}

/// Waits until `ready` holds (or fails the test after a minute).
fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < Duration::from_secs(120), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn interrupt(child: &Child) {
    // SAFETY: kill(2) with a positive pid touches no memory of ours.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
}

#[test]
fn ctrl_c_says_what_it_stopped_and_leaves_no_container_worker_clone_or_runner() {
    for backend in backends() {
        let hostile = hostile();
        let marker = format!("hostile-sleep-{}-{backend}", std::process::id());
        for i in 0..4 {
            hostile.candidate(
                &format!("a_sleep__{i:08}"),
                "add",
                &format!("import subprocess\nsubprocess.run(['sh', '-c', 'sleep 30 # {marker}'])\nreturn a - b"),
            );
        }
        // Whole suites: both workers start at once (a covering run checks its verify sample first).
        let child = hostile.spawn_validate(backend, &["-j", "2", "--timeout", "60", "--select", "all"]);
        let pid = child.id();
        wait_for("the baseline", || hostile.baseline_done(backend));
        wait_for("the sleeping tests", || !processes_with(&marker).is_empty() || backend == "docker");
        std::thread::sleep(Duration::from_millis(500));
        interrupt(&child);
        let output = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&output.stderr).to_string();
        assert_eq!(output.status.code(), Some(130), "{backend}: {err}");
        let said = if backend == "docker" { "removed 2 container(s)" } else { "removed 2 worker clone(s)" };
        assert!(err.contains("interrupted: ") && err.contains(said), "{backend}: {err}");
        if backend == "docker" {
            std::thread::sleep(Duration::from_secs(1));
            assert!(containers_of(pid).is_empty(), "{backend}: {:?}", containers_of(pid));
        }
        assert!(worker_folders_of(pid).is_empty(), "{backend}: {:?}", worker_folders_of(pid));
        wait_for("the tests to end", || processes_with(&marker).is_empty());
    }
}

#[test]
fn a_killed_local_run_takes_its_tests_with_it_and_the_next_run_removes_its_clones() {
    let hostile = hostile();
    let marker = format!("hostile-killed-{}", std::process::id());
    hostile.candidate(
        "a_sleep__00000000",
        "add",
        &format!("import subprocess\nsubprocess.run(['sh', '-c', 'sleep 30 # {marker}'])\nreturn a - b"),
    );
    let mut child = hostile.spawn_validate("local", &["-j", "1", "--timeout", "60"]);
    let pid = child.id();
    wait_for("the sleeping test", || !processes_with(&marker).is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for("the orphaned test to end", || processes_with(&marker).is_empty());
    let left = worker_folders_of(pid);
    assert!(!left.is_empty(), "a killed run cannot clean up, so its clone stays until the next run");
    std::fs::remove_file(hostile.candidates.join("bug__a_sleep__00000000.diff")).unwrap();
    mul_candidates(&hostile, 1);
    let output = hostile.validate("local", &["-j", "1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    for folder in left {
        assert!(!folder.exists(), "{} was left by a dead run and not removed", folder.display());
    }
}

/// A repository with one ordinary function, and `extra` files.
fn small_repository(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("pkg")).unwrap();
    std::fs::write(repo.join("pkg/good.py"), "def ok(a, b):\n    if a > b:\n        return a - b\n    return a + b\n")
        .unwrap();
    repo
}

fn run_gen(repo: &Path, out: &Path, extra: &[&str]) -> (Output, Duration) {
    let mut args = vec!["gen", repo.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let started = Instant::now();
    let output = bugsmith(&args, out);
    (output, started.elapsed())
}

#[test]
fn gen_reads_only_the_checkout_and_reports_deep_huge_and_linked_files_without_aborting() {
    let dir = tempfile::tempdir().unwrap();
    let repo = small_repository(dir.path());
    let secret = dir.path().join("secret.py");
    std::fs::write(&secret, "HOSTILE_SECRET_TEXT = 'do not read'\n").unwrap();
    std::os::unix::fs::symlink(&secret, repo.join("pkg/link.py")).unwrap();
    let terms = vec!["a"; 50_000].join(" + ");
    std::fs::write(repo.join("pkg/deep.py"), format!("def deep(a):\n    return {terms}\n")).unwrap();
    std::fs::write(repo.join("pkg/huge.py"), format!("def huge(a):\n    return a\n{}", "# padding\n".repeat(120_000)))
        .unwrap();
    let out = dir.path().join("out");
    let (output, _) = run_gen(&repo, &out, &["--max-bugs", "1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    let skipped: Vec<(String, String)> = summary["skipped_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["location"].as_str().unwrap().to_string(), p["message"].as_str().unwrap().to_string()))
        .collect();
    assert!(skipped.iter().any(|(at, why)| at == "pkg/link.py" && why.contains("outside the checkout")), "{skipped:?}");
    assert!(skipped.iter().any(|(at, why)| at == "pkg/huge.py" && why.contains("over the 1 MiB limit")), "{skipped:?}");
    assert_eq!(
        (summary["files"].as_u64(), summary["entities"].as_u64()),
        (Some(2), Some(2)),
        "the deep file was parsed: {summary:#}"
    );
    let written: Vec<PathBuf> = walkdir::WalkDir::new(&out)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    assert!(written.iter().any(|p| p.to_string_lossy().contains("good.py")), "the good file still gave candidates");
    for path in written {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(!text.contains("HOSTILE_SECRET_TEXT"), "{} holds text from outside the checkout", path.display());
    }
}

#[test]
fn a_script_building_huge_values_or_spinning_is_stopped_at_its_limits_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let repo = small_repository(dir.path());
    let script = |name: &str, body: &str| {
        let path = dir.path().join(format!("{name}.rhai"));
        std::fs::write(&path, format!("const EXPLANATION = \"{name}\";\nfn mutate(entity, params, rng) {{\n    let big = \"x\";\n    for i in 0..23 {{ big += big; }}\n{body}\n}}\n")).unwrap();
        path.display().to_string()
    };
    let hog = script("hog", "    let edits = [];\n    loop { edits.push(patch::edit(0, 0, big)); }");
    let spin = script("spin", "    loop { let e = patch::edit(0, 0, big); }");
    let quick = script("quick", "    []");
    let (output, _) = run_gen(&repo, &dir.path().join("hog"), &["--strategy", &hog]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    let message = summary["script_errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("built more than 512 MiB of values"), "{summary:#}");

    let (_, quick_time) = run_gen(&repo, &dir.path().join("quick"), &["--strategy", &quick]);
    let (output, spin_time) = run_gen(&repo, &dir.path().join("spin"), &["--strategy", &spin]);
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        summary["script_errors"][0]["message"].as_str().unwrap_or_default().contains("longer than 2 s"),
        "{summary:#}"
    );
    let hook = spin_time.saturating_sub(quick_time).as_secs_f64();
    assert!((1.9..=2.2).contains(&hook), "the 2 s limit fired after {hook:.2} s");
}

#[test]
fn without_bubblewrap_local_tests_run_only_when_asked_and_with_one_warning() {
    let hostile = hostile();
    mul_candidates(&hostile, 2);
    // This machine's PATH with every folder's programs but `bwrap`.
    let shadow = tempfile::tempdir().unwrap();
    let mut path = vec![shadow.path().to_path_buf()];
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap()) {
        if !dir.join("bwrap").exists() {
            path.push(dir);
            continue;
        }
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = entry.file_name();
            if name != "bwrap" && !shadow.path().join(&name).exists() {
                std::os::unix::fs::symlink(entry.path(), shadow.path().join(&name)).unwrap();
            }
        }
    }
    let run = |extra: &[&str]| {
        let out = hostile.out("local");
        let mut args = hostile.args("local", &out);
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_bugsmith"))
            .args(args)
            .env("PATH", std::env::join_paths(&path).unwrap())
            .env("BUGSMITH_CACHE", shared_cache())
            .env("BUGSMITH_NO_PROGRESS", "1")
            .output()
            .unwrap()
    };
    let refused = run(&[]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(message.contains("bubblewrap") && message.contains("--no-sandbox"), "{message}");
    let unsandboxed = run(&["--no-sandbox", "-j", "2"]);
    assert!(unsandboxed.status.success(), "{}", stderr(&unsandboxed));
    assert_eq!(stderr(&unsandboxed).matches("warning: --no-sandbox").count(), 1, "{}", stderr(&unsandboxed));
    let reports = hostile.reports("local");
    assert_eq!(reports.len(), 2);
    assert!(reports.values().all(|r| r["verdict"] == "valid"), "{reports:#?}");
}
