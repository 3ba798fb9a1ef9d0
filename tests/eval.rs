//! Scoring agents' patches: `bugsmith eval` (gold resolves, empty and wrong patches do not,
//! reports in SWE-bench's shape, resumable), `bugsmith serve` over HTTP, SWE-smith's names for
//! git sources, and the exports (SWE-smith profile, SWE-bench instances, function tasks).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{bugsmith, bugsmith_in, gathered, git, json, manifest, shared_cache, stderr, stdout};
use serde_json::Value;

fn instances(dir: &Path, repo_name: &str) -> Vec<Value> {
    let path = dir.join("logs/task_insts").join(format!("{repo_name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The bundled example, validated locally and gathered.
fn inventory(max_bugs: &str) -> (tempfile::TempDir, std::path::PathBuf, String) {
    gathered(&manifest().join("tests/fixtures/repos/inventory").display().to_string(), max_bugs)
}

fn write_predictions(dir: &Path, name: &str, items: &[(String, Option<String>)]) -> String {
    let list: Vec<Value> = items
        .iter()
        .map(|(id, patch)| serde_json::json!({"instance_id": id, "model_patch": patch, "model_name_or_path": "org/model"}))
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string(&list).unwrap()).unwrap();
    path.display().to_string()
}

/// A patch that applies and fixes nothing: it only adds a file.
const WRONG_PATCH: &str =
    "diff --git a/notes.txt b/notes.txt\nnew file mode 100644\n--- /dev/null\n+++ b/notes.txt\n@@ -0,0 +1 @@\n+hello\n";

#[test]
fn eval_resolves_gold_and_nothing_else_and_writes_swe_bench_reports() {
    let (dir, profile, repo_name) = inventory("2");
    let cache = shared_cache();
    let file = dir.path().join("logs/task_insts").join(format!("{repo_name}.jsonl"));
    let (file, profile) = (file.to_str().unwrap(), profile.to_str().unwrap());
    let all = instances(dir.path(), &repo_name);

    let gold = json(&bugsmith_in(&["eval", file, "gold", "--profile", profile, "--json"], &cache, Some(dir.path())));
    assert_eq!(gold["resolved_instances"].as_u64().unwrap() as usize, all.len(), "{gold:#}");
    assert_eq!(gold["total_instances"], gold["submitted_instances"]);
    assert_eq!(gold["resolved"], gold["resolved_instances"], "SWE-smith's keys too");
    let first = all[0]["instance_id"].as_str().unwrap();
    let report_path = dir.path().join("logs/run_evaluation/eval/gold").join(first).join("report.json");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let inner = &report[first];
    for key in ["patch_is_None", "patch_exists", "patch_successfully_applied", "resolved", "tests_status"] {
        assert!(inner.get(key).is_some(), "{key} missing: {report:#}");
    }
    assert_eq!(inner["tests_status"]["FAIL_TO_PASS"]["failure"], serde_json::json!([]));
    let output = std::fs::read_to_string(report_path.with_file_name("test_output.txt")).unwrap();
    assert!(output.starts_with("+ : '>>>>> Start Test Output'") && output.contains("+ : '>>>>> End Test Output'"));

    // A re-run reuses every report; --redo runs them again.
    let again = json(&bugsmith_in(&["eval", file, "gold", "--profile", profile, "--json"], &cache, Some(dir.path())));
    assert_eq!(again["reused"].as_u64().unwrap() as usize, all.len());

    // Empty, missing, wrong and unappliable patches resolve nothing.
    let ids: Vec<String> = all.iter().map(|i| i["instance_id"].as_str().unwrap().to_string()).collect();
    let mut items = vec![(ids[0].clone(), Some(String::new())), (ids[1].clone(), None)];
    items.push((ids[2].clone(), Some(WRONG_PATCH.to_string())));
    items.push((
        ids[3].clone(),
        Some("diff --git a/nope.py b/nope.py\n--- a/nope.py\n+++ b/nope.py\n@@ -1 +1 @@\n-x\n+y\n".into()),
    ));
    let predictions = write_predictions(dir.path(), "preds.json", &items);
    let run = bugsmith_in(
        &["eval", file, &predictions, "--profile", profile, "--run-id", "r2", "--json"],
        &cache,
        Some(dir.path()),
    );
    let summary = json(&run);
    assert_eq!(summary["resolved_instances"], 0, "{summary:#}");
    assert_eq!(summary["empty_patch_instances"], 2, "{summary:#}");
    assert_eq!(summary["submitted_instances"], 4);
    let model_dir = dir.path().join("logs/run_evaluation/r2/org__model");
    let read = |id: &str| -> Value {
        let text = std::fs::read_to_string(model_dir.join(id).join("report.json")).unwrap();
        serde_json::from_str::<Value>(&text).unwrap()[id].clone()
    };
    let wrong = read(&ids[2]);
    assert_eq!((wrong["patch_successfully_applied"].as_bool(), wrong["resolved"].as_bool()), (Some(true), Some(false)));
    let unappliable = read(&ids[3]);
    assert_eq!(unappliable["patch_successfully_applied"], false, "{unappliable:#}");
}

/// Starts `bugsmith serve` on a free loopback port; returns the child and the address.
fn start_serve(args: &[&str], dir: &Path, envs: &[(&str, &str)]) -> (std::process::Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bugsmith"));
    command
        .args(["serve"])
        .args(args)
        .current_dir(dir)
        .env("BUGSMITH_STRATEGIES", manifest().join("strategies"))
        .env("BUGSMITH_CACHE", shared_cache())
        .env("BUGSMITH_NO_PROGRESS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let address =
        line.split("http://").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or_default().to_string();
    assert!(!address.is_empty(), "serve did not say where it listens: {line}");
    (child, address)
}

fn post(address: &str, path: &str, body: &str, token: Option<&str>) -> (u16, Value) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn serve_answers_evaluations_over_http_with_a_token_and_json_errors() {
    let (dir, profile, repo_name) = inventory("1");
    let file = dir.path().join("logs/task_insts").join(format!("{repo_name}.json"));
    let all = instances(dir.path(), &repo_name);
    let (id, patch) = (all[0]["instance_id"].as_str().unwrap(), all[0]["patch"].as_str().unwrap());
    let fix = bugsmith::patch::reverse(patch);
    let (file, profile) = (file.to_str().unwrap(), profile.to_str().unwrap());

    // A non-loopback address needs a token.
    let refused =
        bugsmith_in(&["serve", file, "--profile", profile, "--bind", "0.0.0.0:0"], &shared_cache(), Some(dir.path()));
    assert!(!refused.status.success() && stderr(&refused).contains("token"), "{}", stderr(&refused));

    let (mut child, address) = start_serve(
        &[file, "--profile", profile, "--bind", "127.0.0.1:0", "--token-env", "SERVE_TOKEN"],
        dir.path(),
        &[("SERVE_TOKEN", "s3cret")],
    );
    let body = serde_json::json!({"instance_id": id, "model_patch": fix}).to_string();
    let (status, _) = post(&address, "/v1/evaluate", &body, None);
    assert_eq!(status, 401);
    let (status, answer) = post(&address, "/v1/evaluate", &body, Some("s3cret"));
    assert_eq!(status, 200, "{answer:#}");
    assert_eq!(answer[id]["resolved"], true, "{answer:#}");
    let empty = serde_json::json!({"instance_id": id, "model_patch": ""}).to_string();
    let (_, answer) = post(&address, "/v1/evaluate", &empty, Some("s3cret"));
    assert_eq!(answer[id]["resolved"], false);
    let (status, answer) = post(&address, "/v1/evaluate", "{not json", Some("s3cret"));
    assert!(status == 400 && answer["error"].as_str().unwrap().contains("bad JSON"), "{answer:#}");
    let (status, _) = post(&address, "/v1/evaluate", r#"{"instance_id": "nope"}"#, Some("s3cret"));
    assert_eq!(status, 404);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_clean_work_tree_with_a_remote_is_named_after_the_remote_and_its_head() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("glom");
    std::fs::create_dir_all(work.join("glom")).unwrap();
    std::fs::write(work.join("glom/__init__.py"), "def f():\n    return 1\n").unwrap();
    git(dir.path(), &["init", "-q", work.to_str().unwrap()]);
    git(&work, &["add", "-A"]);
    git(&work, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one"]);
    git(&work, &["remote", "add", "origin", "https://example.org/mahmoud/glom.git"]);
    let head = git(&work, &["rev-parse", "HEAD"]);
    let profile = dir.path().join("p.yaml");
    let init = bugsmith(
        &["profile", "init", work.to_str().unwrap(), "-o", profile.to_str().unwrap(), "--org", "acme"],
        cache.path(),
    );
    assert!(init.status.success(), "{}", stderr(&init));
    let text = std::fs::read_to_string(&profile).unwrap();
    assert!(text.contains(&format!("repo_name: mahmoud__glom.{}", &head[..8])), "{text}");
    assert!(text.contains(&format!("image_name: acme/swesmith.x86_64.mahmoud_1776_glom.{}", &head[..8])), "{text}");
    assert!(text.contains("org: acme"), "{text}");

    // A dirty tree keeps the content-hash name.
    std::fs::write(work.join("glom/extra.py"), "x = 1\n").unwrap();
    let dirty = bugsmith(&["profile", "init", work.to_str().unwrap(), "-o", profile.to_str().unwrap()], cache.path());
    assert!(stdout(&dirty).contains("local__glom."), "{}", stdout(&dirty));
}

#[test]
fn exports_write_a_swe_smith_profile_swe_bench_instances_and_function_tasks() {
    let (dir, profile, repo_name) = inventory("2");
    let cache = shared_cache();
    let file = dir.path().join("logs/task_insts").join(format!("{repo_name}.json"));
    let (file, profile) = (file.to_str().unwrap(), profile.to_str().unwrap());

    let python = dir.path().join("bugsmith_profile.py");
    let out =
        bugsmith_in(&["export", "swesmith-profile", profile, "-o", python.to_str().unwrap()], &cache, Some(dir.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&python).unwrap();
    assert!(text.contains("registry.register_profile(") && text.contains("org_gh: str = \"bugsmith\""), "{text}");
    let compiled = Command::new("python3").args(["-m", "py_compile"]).arg(&python).status().unwrap();
    assert!(compiled.success(), "the profile module is valid Python");

    let exported = dir.path().join("swebench.jsonl");
    let out = bugsmith_in(
        &["export", "swebench", file, "--profile", profile, "-o", exported.to_str().unwrap(), "--no-images"],
        &cache,
        Some(dir.path()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mirror = dir.path().join("logs/mirrors").join(format!("{repo_name}.git"));
    let lines = std::fs::read_to_string(&exported).unwrap();
    let instances = self::instances(dir.path(), &repo_name);
    assert_eq!(lines.lines().count(), instances.len());
    for (line, instance) in lines.lines().zip(&instances) {
        let e: Value = serde_json::from_str(line).unwrap();
        let id = e["instance_id"].as_str().unwrap();
        assert_eq!(e["base_commit"].as_str().unwrap(), git(&mirror, &["rev-parse", id]), "the branch head's SHA");
        assert_eq!(e["environment_setup_commit"].as_str().unwrap(), git(&mirror, &["rev-parse", "main"]));
        assert_eq!(e["version"], "1.0");
        assert_eq!(e["patch"].as_str().unwrap(), bugsmith::patch::reverse(instance["patch"].as_str().unwrap()));
        let f2p: Vec<String> = serde_json::from_str(e["FAIL_TO_PASS"].as_str().unwrap()).unwrap();
        assert_eq!(serde_json::json!(f2p), instance["FAIL_TO_PASS"]);
        // test_patch restores the tests: applied to the branch head it gives the bug commit.
        let clone = dir.path().join(format!("c-{id}"));
        git(dir.path(), &["clone", "-q", mirror.to_str().unwrap(), clone.to_str().unwrap()]);
        git(&clone, &["checkout", "-q", id]);
        let test_patch = clone.join("../tp.diff");
        std::fs::write(&test_patch, e["test_patch"].as_str().unwrap()).unwrap();
        git(&clone, &["apply", test_patch.to_str().unwrap()]);
        assert!(
            Command::new("git").arg("-C").arg(&clone).args(["diff", "--quiet", "HEAD~1"]).status().unwrap().success()
        );
        let p2p: Vec<String> = serde_json::from_str(e["PASS_TO_PASS"].as_str().unwrap()).unwrap();
        let files = bugsmith::patch::files_of(e["test_patch"].as_str().unwrap());
        assert!(
            p2p.iter().all(|t| files.iter().any(|f| t.starts_with(&format!("{f}::")))),
            "P2P only from the files SWE-bench runs"
        );
    }
    let spec = std::fs::read_to_string(dir.path().join("swebench_spec.py")).unwrap();
    assert!(spec.contains("MAP_REPO_VERSION_TO_SPECS") && spec.contains("-rA"), "{spec}");

    let tasks = dir.path().join("functions.jsonl");
    let out = bugsmith_in(&["export", "functions", file, "-o", tasks.to_str().unwrap()], &cache, Some(dir.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&tasks).unwrap();
    assert!(text.lines().count() >= 1, "{}", stdout(&out));
    for line in text.lines() {
        let task: Value = serde_json::from_str(line).unwrap();
        let (context, reference) = (task["context"].as_str().unwrap(), task["reference"].as_str().unwrap());
        assert!(context.contains("# TODO: Implement this function") && !context.contains(reference), "{task:#}");
        assert!(reference.contains(task["signature"].as_str().unwrap().trim_end_matches(':')), "{task:#}");
    }
}

#[test]
fn gather_leaves_a_local_mirror_clone_with_every_branch_beside_the_virtualenv() {
    // A copy of the example with one more file: an environment (and testbed) of its own.
    let copy = tempfile::tempdir().unwrap();
    let source = copy.path().join("inventory");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(manifest().join("tests/fixtures/repos/inventory"))
        .arg(&source)
        .status()
        .unwrap();
    assert!(copied.success());
    std::fs::write(source.join("NOTES.txt"), "testbed test\n").unwrap();
    let (dir, profile, repo_name) = gathered(source.to_str().unwrap(), "1");
    let summary =
        json(&bugsmith_in(&["gather", profile.to_str().unwrap(), "--json"], &shared_cache(), Some(dir.path())));
    let line = summary["agent_environments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|l| l.starts_with("local testbed"))
        .unwrap_or_else(|| panic!("{summary:#}"))
        .to_string();
    let testbed = Path::new(line.rsplit_once(": ").unwrap().1);
    let branches = git(testbed, &["branch", "--list"]);
    assert_eq!(branches.lines().count(), instances(dir.path(), &repo_name).len() + 1, "every instance and main");
    assert!(testbed.parent().unwrap().join("env.sh").is_file());
    let id = instances(dir.path(), &repo_name)[0]["instance_id"].as_str().unwrap().to_string();
    git(testbed, &["checkout", "-q", &id]);
    git(testbed, &["checkout", "-q", "main"]);
}

#[test]
fn instances_carry_difficulty_fields_and_their_org() {
    let (dir, _, repo_name) = inventory("2");
    for instance in instances(dir.path(), &repo_name) {
        assert_eq!(instance["repo"], format!("bugsmith/{repo_name}"));
        assert_eq!(instance["num_f2p"].as_u64().unwrap() as usize, instance["FAIL_TO_PASS"].as_array().unwrap().len());
        assert!(instance["lines_changed"].as_u64().unwrap() >= 1 && instance["hunks"].as_u64().unwrap() >= 1);
        assert_eq!(instance["files_changed"], 1);
        assert!(instance["functions_changed"].as_u64().unwrap() <= 3, "{instance:#}");
        assert!(!instance["strategy"].as_str().unwrap().is_empty());
    }
    let report = dir.path().join("logs/run_validation").join(&repo_name);
    let any = std::fs::read_dir(&report)
        .unwrap()
        .flatten()
        .find(|e| !e.file_name().to_string_lossy().ends_with(".ref"))
        .unwrap();
    let text = std::fs::read_to_string(any.path().join("report.json")).unwrap();
    assert!(!text.contains("timed_out"), "SWE-smith counts any `timed_out` key as a timeout");
    assert!(any.path().join("eval.sh").is_file());
}
