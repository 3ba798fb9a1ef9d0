//! Helpers shared by the integration tests: run the binary, read its JSON, find a Docker daemon.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

pub fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the binary with the repository's strategies, a cache and no progress bar.
pub fn bugsmith(args: &[&str], cache: &Path) -> Output {
    bugsmith_in(args, cache, None)
}

/// Like [`bugsmith`], in a working directory.
pub fn bugsmith_in(args: &[&str], cache: &Path, dir: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bugsmith"));
    command
        .args(args)
        .env("BUGSMITH_STRATEGIES", manifest().join("strategies"))
        .env("BUGSMITH_CACHE", cache)
        .env("BUGSMITH_NO_PROGRESS", "1");
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command.output().expect("run bugsmith")
}

/// Runs `git -C dir args…`, which must succeed; returns its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// The JSON summary of a successful run.
pub fn json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "bugsmith failed:\n{}\n{}", stderr(output), stdout(output));
    serde_json::from_slice(&output.stdout).expect("JSON summary")
}

/// Sdists and environments are made once per target directory.
pub fn shared_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bugsmith-cache")
}

/// Whether Docker tests can run: a daemon answers and the local base image exists. Without them
/// the test is skipped, unless `BUGSMITH_REQUIRE_DOCKER` is set (CI), where it fails.
pub fn docker_ready() -> bool {
    let info = Command::new("docker").args(["image", "inspect", "bugsmith-base:bookworm"]).output();
    let ready = info.is_ok_and(|o| o.status.success());
    if !ready {
        assert!(
            std::env::var_os("BUGSMITH_REQUIRE_DOCKER").is_none(),
            "BUGSMITH_REQUIRE_DOCKER is set but no Docker daemon with the image bugsmith-base:bookworm answers (run .ci/base-image.sh)"
        );
        // Straight to the process's stderr: the test harness captures `eprintln!`, and a skip
        // must show in the output.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"skipped: docker unavailable (no daemon with the image bugsmith-base:bookworm)\n",
        );
    }
    ready
}

/// Reads one HTTP request from a test server's connection: its request line and body.
pub fn read_request(stream: &std::net::TcpStream) -> (String, String) {
    use std::io::{BufRead, BufReader, Read};
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    let _ = reader.read_line(&mut request_line);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    (request_line, String::from_utf8_lossy(&body).to_string())
}

/// A local OpenAI-compatible chat server on loopback: `answer` maps a request body to the reply
/// text. Returns its base URL and the bodies it received.
pub fn lm_server(
    answer: impl Fn(&str) -> String + Send + Sync + 'static,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let (url, bodies, _) = lm_server_slow(answer, std::time::Duration::ZERO);
    (url, bodies)
}

/// [`lm_server`] answering each request after `delay`, one thread per connection; also returns
/// the most requests it ever had in hand at once.
#[allow(clippy::type_complexity)]
pub fn lm_server_slow(
    answer: impl Fn(&str) -> String + Send + Sync + 'static,
    delay: std::time::Duration,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let (in_flight, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (seen, most_seen, answer) = (bodies.clone(), most.clone(), Arc::new(answer));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let (seen, in_flight, most, answer) = (seen.clone(), in_flight.clone(), most_seen.clone(), answer.clone());
            std::thread::spawn(move || {
                let (_, body) = read_request(&stream);
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(delay);
                let content = answer(&body);
                seen.lock().unwrap().push(body);
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let text = serde_json::json!({
                    "choices": [{"message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 2000, "completion_tokens": 100}
                })
                .to_string();
                let _ = stream.write_all(
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}", text.len())
                        .as_bytes(),
                );
            });
        }
    });
    (url, bodies, most)
}

/// profile init, gen, validate (local) and gather for a source, in a fresh directory.
pub fn gathered(source: &str, max_bugs: &str) -> (tempfile::TempDir, PathBuf, String) {
    let cache = shared_cache();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile.yaml");
    assert!(bugsmith(&["profile", "init", source, "-o", profile.to_str().unwrap()], &cache).status.success());
    let p = profile.to_str().unwrap();
    let generated = json(&bugsmith_in(&["gen", p, "--max-bugs", max_bugs, "--json"], &cache, Some(dir.path())));
    let repo_name = generated["repo_name"].as_str().unwrap().to_string();
    json(&bugsmith_in(&["validate", p, "--json"], &cache, Some(dir.path())));
    let summary = json(&bugsmith_in(&["gather", p, "--json"], &cache, Some(dir.path())));
    assert!(summary["instances"].as_u64().unwrap() >= 5, "{summary:#}");
    assert!(summary["problems"].as_array().unwrap().is_empty(), "{summary:#}");
    (dir, profile, repo_name)
}

/// SWE-smith 0.0.9 with SWE-bench 4.1.0 and the run-time imports it needs, pinned (see
/// `../shared/reference/consumers.md`).
pub const PACKAGES: &[&str] = &[
    "swesmith==0.0.9",
    "swebench==4.1.0",
    "libcst",
    "astor",
    "unidiff",
    "docker",
    "ghapi",
    "python-dotenv",
    "rich",
    "tqdm",
    "jinja2",
    "tree-sitter==0.26.1",
    "tree-sitter-c==0.24.2",
    "tree-sitter-c-sharp==0.23.5",
    "tree-sitter-cpp==0.23.4",
    "tree-sitter-go==0.25.0",
    "tree-sitter-java==0.23.5",
    "tree-sitter-javascript==0.25.0",
    "tree-sitter-php==0.25.1",
    "tree-sitter-ruby==0.23.1",
    "tree-sitter-rust==0.24.2",
    "tree-sitter-typescript==0.23.2",
];

/// The venv's python, made once per target directory.
pub fn consumers_python() -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("consumers-venv");
    let python = venv.join("bin/python");
    let imports = || {
        Command::new(&python)
            .args(["-c", "import swesmith.harness.eval, swesmith.harness.gather, swebench.harness.run_evaluation"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !imports() {
        let _ = std::fs::remove_dir_all(&venv);
        assert!(Command::new("python3").args(["-m", "venv"]).arg(&venv).status().unwrap().success());
        let pip = Command::new(&python).args(["-m", "pip", "install", "-q"]).args(PACKAGES).output().unwrap();
        assert!(pip.status.success(), "pip install failed: {}", String::from_utf8_lossy(&pip.stderr));
        assert!(imports(), "SWE-smith and SWE-bench do not import after install");
    }
    python
}

/// Runs the driver in `dir`; returns its last line as JSON.
pub fn drive(dir: &Path, args: &[&str]) -> serde_json::Value {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new(consumers_python())
        .arg(manifest().join("tests/fixtures/consumers/drive.py"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "drive.py {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// A run id no earlier run used: the harnesses name their containers after run and instance
/// ids and do not replace a leftover container of a killed run, so a reused id fails every instance.
pub fn fresh_run_id(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{name}-{}-{nanos:x}", std::process::id())
}

/// A git-format patch made by editing a file of the repository `checkout`.
pub fn patch_of(checkout: &Path, file: &str, edit: impl FnOnce(&str) -> String) -> String {
    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("clone");
    assert!(Command::new("git").args(["clone", "-q"]).arg(checkout).arg(&clone).status().unwrap().success());
    let path = clone.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(&text)).unwrap();
    let diff = Command::new("git").arg("-C").arg(&clone).args(["diff"]).output().unwrap();
    String::from_utf8(diff.stdout).unwrap()
}

/// The validation reports under `dir` (a `run_validation/<repo_name>` folder), by instance id.
pub fn reports_in(dir: &Path) -> std::collections::BTreeMap<String, serde_json::Value> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("report.json").is_file())
        .map(|p| {
            let report: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(p.join("report.json")).unwrap()).unwrap();
            (report["instance_id"].as_str().unwrap().to_string(), report)
        })
        .collect()
}

/// Waits (up to two minutes) until `n` reports exist under `dir`, then kills `child`; returns
/// how many reports there were when it died.
pub fn kill_after_reports(mut child: std::process::Child, dir: &Path, n: usize) -> usize {
    let reports =
        || walkdir::WalkDir::new(dir).into_iter().flatten().filter(|e| e.file_name() == "report.json").count();
    for _ in 0..2400 {
        if reports() >= n {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    reports()
}
