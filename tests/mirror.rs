//! PR mirroring: from the git history of a repository built from two real consecutive releases of
//! `parse` (the second fixes hyphenated field names and adds tests for it), by reverse-applying
//! and, when the code moved on, through a language model (a local server); and the GitHub
//! collector against a local fake API (pages, rate limit, linked issues).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{bugsmith_in, json, lm_server, shared_cache};
use serde_json::Value;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The files of an sdist (a bugsmith checkout of it, without its `.git`).
fn release(version: &str) -> PathBuf {
    let spec = bugsmith::source::SourceSpec::parse(&format!("pypi:parse=={version}")).unwrap();
    bugsmith::source::fetch(&spec, &shared_cache()).unwrap().root
}

/// A repository whose history is parse 1.20.1, then 1.20.2.
fn history_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("parse-history");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    let stash = dir.join("our-git");
    let save = |repo: &Path| {
        let _ = std::fs::remove_dir_all(&stash);
        std::fs::rename(repo.join(".git"), &stash).unwrap();
    };
    let restore = |repo: &Path| {
        let _ = std::fs::remove_dir_all(repo.join(".git"));
        std::fs::rename(&stash, repo.join(".git")).unwrap();
    };
    for (version, message) in [
        ("1.20.1", "parse 1.20.1"),
        ("1.20.2", "Allow hyphens in field names\n\nFields such as {user-id} could not be parsed (issue 86)."),
    ] {
        save(&repo);
        for entry in std::fs::read_dir(&repo).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { std::fs::remove_dir_all(&path).unwrap() } else { std::fs::remove_file(&path).unwrap() }
        }
        let from = release(version);
        assert!(
            Command::new("cp").arg("-r").arg(format!("{}/.", from.display())).arg(&repo).status().unwrap().success()
        );
        let _ = std::fs::remove_dir_all(repo.join(".git"));
        restore(&repo);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-qm", message]);
    }
    repo
}

/// profile init from the repository's URL (so its history comes along), env build, mirror.
fn mirror(dir: &Path, repo: &Path, extra: &[&str]) -> (PathBuf, Value) {
    let profile = dir.join("profile.yaml");
    let url = format!("file://{}", repo.display());
    let cache = shared_cache();
    let init = bugsmith_in(&["profile", "init", &url, "-o", profile.to_str().unwrap()], &cache, Some(dir));
    assert!(init.status.success(), "{}", common::stderr(&init));
    let mut args = vec!["mirror", profile.to_str().unwrap(), "--from", "history", "--json"];
    args.extend_from_slice(extra);
    let summary = json(&bugsmith_in(&args, &cache, Some(dir)));
    (profile, summary)
}

fn reports(dir: &Path) -> Vec<Value> {
    walkdir::WalkDir::new(dir.join("logs/run_validation"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name() == "report.json")
        .map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap())
        .collect()
}

#[test]
fn a_commit_from_the_history_is_undone_by_reverse_applying_and_its_tests_fail() {
    let dir = tempfile::tempdir().unwrap();
    let repo = history_repo(dir.path());
    let (profile, summary) = mirror(dir.path(), &repo, &[]);
    assert_eq!(summary["reversed"], 1, "{summary:#}");
    let validated =
        json(&bugsmith_in(&["validate", profile.to_str().unwrap(), "--json"], &shared_cache(), Some(dir.path())));
    assert_eq!(validated["strategies"]["pr_mirror"]["valid"], 1, "{validated:#}");
    let report = reports(dir.path()).into_iter().find(|r| r["instance_id"].as_str().unwrap().contains(".pr_")).unwrap();
    let f2p: Vec<&str> = report["FAIL_TO_PASS"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(f2p.contains(&"tests/test_parse.py::test_hyphen_inside_field_name"), "{f2p:?}");
    // The metadata keeps the change's own words for the from-PR issue template.
    let meta = walkdir::WalkDir::new(dir.path().join("logs/bug_gen"))
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("metadata__pr_"))
        .unwrap();
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(meta.path()).unwrap()).unwrap();
    assert_eq!(meta["method"], "reverse");
    assert!(meta["issue_text"].as_str().unwrap().contains("{user-id}"));
    json(&bugsmith_in(&["gather", profile.to_str().unwrap(), "--json"], &shared_cache(), Some(dir.path())));
    let issues = json(&bugsmith_in(
        &["issue-gen", profile.to_str().unwrap(), "--template", "from_pr", "--json"],
        &shared_cache(),
        Some(dir.path()),
    ));
    assert_eq!(issues["errors"].as_array().unwrap().len(), 0, "{issues:#}");
}

#[test]
fn when_the_code_moved_on_a_model_rewrites_the_file_without_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let repo = history_repo(dir.path());
    // A later commit reshapes a line the fix touched: the fix no longer reverse-applies.
    let source = repo.join("parse.py");
    let text = std::fs::read_to_string(&source).unwrap();
    let old_line = r#"        group = field.replace(".", "_").replace("[", "_").replace("]", "_").replace("-", "_")"#;
    assert!(text.contains(old_line));
    let new_lines = "        group = field.replace(\".\", \"_\").replace(\"[\", \"_\")\n        group = group.replace(\"]\", \"_\").replace(\"-\", \"_\")";
    std::fs::write(&source, text.replace(old_line, new_lines)).unwrap();
    git(&repo, &["commit", "-qam", "Split a long line"]);
    // The model answers with the file as it is now, the hyphen-aware pattern put back as before.
    let head = std::fs::read_to_string(&source).unwrap();
    let undone = head.replace(r#"{[\w-]*(?:\.[\w-]+|\[[^]]+])*(?::[^}]+)?}"#, r#"{\w*(?:\.\w+|\[[^]]+])*(?::[^}]+)?}"#);
    assert_ne!(undone, head);
    let (url, bodies) = lm_server(move |body| {
        if body.contains("Allow hyphens") || body.contains("[\\\\w-]*") {
            format!("Here it is:\n```python\n{undone}```\n")
        } else {
            "no".into()
        }
    });
    let (profile, summary) = mirror(dir.path(), &repo, &["--lm-base-url", &url, "--lm-model", "fake", "--limit", "1"]);
    let _ = profile;
    // The newest commit (the split line) reverse-applies; limit 1 keeps only it. Mirror again
    // with more changes: the fix itself needs the model.
    assert_eq!(summary["reversed"], 1, "{summary:#}");
    let (profile, summary) = mirror(dir.path(), &repo, &["--lm-base-url", &url, "--lm-model", "fake", "--limit", "2"]);
    assert_eq!(summary["rewritten"], 1, "{summary:#}");
    // The answer came from the model (or from the response cache, on a re-run of this test).
    let ledger: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("logs/lm_ledger.json")).unwrap()).unwrap();
    let asked = ledger["fake"]["calls"].as_u64().unwrap_or(0) + ledger["fake"]["cached"].as_u64().unwrap_or(0);
    assert!(asked >= 1 && bodies.lock().unwrap().len() as u64 <= asked, "{ledger}");
    let validated =
        json(&bugsmith_in(&["validate", profile.to_str().unwrap(), "--json"], &shared_cache(), Some(dir.path())));
    assert!(validated["strategies"]["pr_mirror"]["valid"].as_u64().unwrap() >= 1, "{validated:#}");
    let meta = walkdir::WalkDir::new(dir.path().join("logs/bug_gen"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("metadata__pr_"))
        .map(|e| serde_json::from_str::<Value>(&std::fs::read_to_string(e.path()).unwrap()).unwrap())
        .find(|m| m["method"] == "lm")
        .unwrap();
    assert!(meta["title"].as_str().unwrap().starts_with("Allow hyphens"));
}

/// A fake GitHub API: two pages of pulls, their files, a linked issue, and one rate-limit stop.
fn fake_github() -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let api = base.clone();
    std::thread::spawn(move || {
        let mut limited_once = false;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let (request, _) = common::read_request(&stream);
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let file = |name: &str| serde_json::json!({"filename": name, "status": "modified", "patch": "@@ -1 +1 @@\n-a = 1\n+a = 2"});
            let (status, extra, body) = if path.contains("/pulls?") && !limited_once {
                limited_once = true;
                let reset = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1;
                (
                    403,
                    format!("x-ratelimit-remaining: 0\r\nx-ratelimit-reset: {reset}\r\n"),
                    "{\"message\": \"rate limited\"}".to_string(),
                )
            } else if path.contains("/pulls?") && !path.contains("page=2") {
                let pulls = serde_json::json!([
                    {"number": 10, "title": "Fix the sum", "body": "Fixes #3", "merged_at": "2026-01-01T00:00:00Z", "html_url": "u10"},
                    {"number": 11, "title": "Not merged", "body": "", "merged_at": null, "html_url": "u11"},
                ]);
                (
                    200,
                    format!("link: <{base}/repos/o/r/pulls?state=closed&page=2>; rel=\"next\"\r\n"),
                    pulls.to_string(),
                )
            } else if path.contains("/pulls?") {
                let pulls = serde_json::json!([
                    {"number": 12, "title": "Tests only", "body": "", "merged_at": "2026-01-02T00:00:00Z", "html_url": "u12"},
                    {"number": 13, "title": "Too big", "body": "", "merged_at": "2026-01-03T00:00:00Z", "html_url": "u13"},
                ]);
                (200, String::new(), pulls.to_string())
            } else if path.contains("/pulls/10/files") {
                (
                    200,
                    String::new(),
                    serde_json::json!([file("pkg/m.py"), file("tests/test_m.py"), file("README.md")]).to_string(),
                )
            } else if path.contains("/pulls/12/files") {
                (200, String::new(), serde_json::json!([file("tests/test_m.py")]).to_string())
            } else if path.contains("/pulls/13/files") {
                let many: Vec<Value> = (0..9).map(|i| file(&format!("pkg/m{i}.py"))).collect();
                (200, String::new(), Value::Array(many).to_string())
            } else if path.contains("/issues/3") {
                (
                    200,
                    String::new(),
                    serde_json::json!({"title": "Sum is wrong", "body": "sum([1, 2]) gives 4"}).to_string(),
                )
            } else {
                (404, String::new(), "{}".to_string())
            };
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 {status} X\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    api
}

#[test]
fn github_pull_requests_are_collected_across_pages_and_rate_limits() {
    let api = fake_github();
    let started = std::time::Instant::now();
    let changes = bugsmith::github::changes(&api, "o/r", Some("secret-token"), 10).unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(500), "the rate limit was waited out");
    assert_eq!(changes.len(), 1, "unmerged, tests-only and too-big PRs are skipped");
    let change = &changes[0];
    assert_eq!(change.id, "pr_10");
    assert_eq!(change.issue_text, "Sum is wrong\n\nsum([1, 2]) gives 4");
    assert_eq!(
        change.patch,
        "diff --git a/pkg/m.py b/pkg/m.py\n--- a/pkg/m.py\n+++ b/pkg/m.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n"
    );
}
