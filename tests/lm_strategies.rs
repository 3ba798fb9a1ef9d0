//! LM modify and LM rewrite against a local OpenAI-compatible server (real HTTP) that answers
//! like models do: fenced code with a bug and prose around it, prose without code, broken code,
//! unchanged code. Good answers become candidates that apply and parse; bad ones are counted.

mod common;

use std::path::Path;
use std::process::Command;

use common::{bugsmith, json, lm_server};
use serde_json::Value;

/// A small repository with one function per kind of answer the server gives.
fn repository(dir: &Path) {
    std::fs::create_dir_all(dir.join("pkg")).unwrap();
    let function = |name: &str| {
        format!(
            "def {name}(items, limit):\n    \"\"\"Sum the items up to a limit.\"\"\"\n    total = 0\n    for item in items:\n        if item > 0 and total < limit:\n            total += item\n    return total\n\n\n"
        )
    };
    let text: String = ["good", "prose", "broken", "same"].iter().map(|n| function(n)).collect();
    std::fs::write(dir.join("pkg/sums.py"), text).unwrap();
}

/// What the fake model says, by the function named in the request.
fn answer(body: &str) -> String {
    let request: Value = serde_json::from_str(body).unwrap();
    let user = request["messages"][1]["content"].as_str().unwrap_or("").to_string();
    let wants = |name: &str| {
        user.contains(&format!("def {name}(")) && !user.contains("# TODO") || user.contains(&format!("`def {name}("))
    };
    if wants("good") {
        "Explanation: the limit check is off by one.\n\nBugged Code:\n```python\ndef good(items, limit):\n    \"\"\"Sum the items up to a limit.\"\"\"\n    total = 0\n    for item in items:\n        if item > 0 and total <= limit:\n            total += item\n    return total\n```\nThat should do it.".into()
    } else if wants("prose") {
        "I would rather not write buggy code, but you could change the comparison.".into()
    } else if wants("broken") {
        "```python\ndef broken(items, limit):\n    total = 0\n    for item in items\n        total += item\n```".into()
    } else {
        "```python\ndef same(items, limit):\n    \"\"\"Sum the items up to a limit.\"\"\"\n    total = 0\n    for item in items:\n        if item > 0 and total < limit:\n            total += item\n    return total\n```".into()
    }
}

fn recipe(dir: &Path, url: &str, strategy: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{strategy}.yaml"));
    std::fs::write(
        &path,
        format!("strategies:\n  - id: {strategy}\nlm:\n  base_url: {url}\n  model: fake\n  backoff_ms: 10\n  prices:\n    fake: [1.0, 2.0]\n"),
    )
    .unwrap();
    path
}

#[test]
fn lm_modify_keeps_good_answers_and_counts_the_bad_ones_and_a_rerun_costs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    repository(&repo);
    let (url, bodies) = lm_server(answer);
    let recipe = recipe(dir.path(), &url, "lm_modify");
    let out = dir.path().join("out");
    let args =
        ["gen", repo.to_str().unwrap(), "--recipe", recipe.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"];
    let summary = json(&bugsmith(&args, dir.path()));
    let stats = &summary["strategies"]["lm_modify"];
    assert_eq!(stats["eligible"], 4, "{summary:#}");
    assert_eq!(stats["candidates"], 1, "{summary:#}");
    assert_eq!(stats["unparsable"], 1, "{summary:#}");
    assert_eq!(stats["unchanged"], 3, "{summary:#}");
    assert_eq!(bodies.lock().unwrap().len(), 4);

    // The system prompt carries three bug kinds and the tips.
    let request: Value = serde_json::from_str(&bodies.lock().unwrap()[0]).unwrap();
    let system = request["messages"][0]["content"].as_str().unwrap();
    assert_eq!(system.lines().filter(|l| l.starts_with("- ")).count(), 3 + 7, "{system}");
    assert!(!system.contains("{{"));

    // The candidate applies, changes only the function, and records its cost.
    let diff_path = walkdir::WalkDir::new(&out)
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("bug__lm_modify__"))
        .unwrap();
    let diff = std::fs::read_to_string(diff_path.path()).unwrap();
    assert!(
        diff.contains("-        if item > 0 and total < limit:\n+        if item > 0 and total <= limit:\n"),
        "{diff}"
    );
    assert_eq!(diff.lines().filter(|l| l.starts_with('+') && !l.starts_with("+++")).count(), 1, "{diff}");
    let checkout = walkdir::WalkDir::new(dir.path().join("checkouts"))
        .max_depth(1)
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("local__repo."))
        .unwrap();
    let patch = dir.path().join("p.diff");
    std::fs::write(&patch, &diff).unwrap();
    assert!(
        Command::new("git")
            .arg("-C")
            .arg(checkout.path())
            .args(["apply", "--check"])
            .arg(&patch)
            .status()
            .unwrap()
            .success()
    );
    let metadata: Value = serde_json::from_str(
        &std::fs::read_to_string(
            diff_path.path().to_string_lossy().replace("bug__", "metadata__").replace(".diff", ".json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert!((metadata["cost"].as_f64().unwrap() - 0.0022).abs() < 1e-9, "{metadata}");
    let ledger: Value = serde_json::from_str(&std::fs::read_to_string(out.join("lm_ledger.json")).unwrap()).unwrap();
    assert_eq!(ledger["fake"]["calls"], 4);

    // Same seed again: every answer comes from the cache.
    let again = json(&bugsmith(&args, dir.path()));
    assert_eq!(again["strategies"]["lm_modify"]["candidates"], 1);
    assert_eq!(bodies.lock().unwrap().len(), 4, "no new request");
}

#[test]
fn lm_rewrite_sends_the_file_with_the_body_removed_and_splices_the_answer_back() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    repository(&repo);
    let (url, bodies) = lm_server(answer);
    let recipe = recipe(dir.path(), &url, "lm_rewrite");
    let out = dir.path().join("out");
    let summary = json(&bugsmith(
        &[
            "gen",
            repo.to_str().unwrap(),
            "--recipe",
            recipe.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    ));
    let stats = &summary["strategies"]["lm_rewrite"];
    assert_eq!(stats["candidates"], 1, "{summary:#}");
    let requests = bodies.lock().unwrap();
    let good = requests.iter().find(|b| b.contains("`def good(")).expect("a request for good");
    let request: Value = serde_json::from_str(good).unwrap();
    let user = request["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains("def good(items, limit):\n    \"\"\"Sum the items up to a limit.\"\"\"\n    # TODO: Implement this function\n    pass"), "{user}");
    assert!(
        user.contains("def same(items, limit):\n    \"\"\"Sum the items up to a limit.\"\"\"\n    total = 0"),
        "the rest of the file is intact"
    );
}

#[test]
fn a_loopback_model_server_is_reached_directly_even_with_a_proxy_set_so_the_key_never_passes_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    repository(&repo);
    let (url, bodies) = lm_server(answer);
    // A proxy that counts the requests made to it and refuses them.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let proxied = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = proxied.clone();
    std::thread::spawn(move || {
        for stream in proxy.incoming() {
            let Ok(mut stream) = stream else { break };
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = common::read_request(&stream);
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.1 502 No\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let recipe = recipe(dir.path(), &url, "lm_modify");
    let out = dir.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_bugsmith"))
        .args(["gen", repo.to_str().unwrap(), "--recipe", recipe.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap(), "--lm-key-env", "BUGSMITH_TEST_KEY", "--json"])
        .env("BUGSMITH_STRATEGIES", common::manifest().join("strategies"))
        .env("BUGSMITH_CACHE", dir.path())
        .env("BUGSMITH_NO_PROGRESS", "1")
        .env("BUGSMITH_TEST_KEY", "sk-test-secret")
        .env("HTTP_PROXY", &proxy_url)
        .env("http_proxy", &proxy_url)
        .env("ALL_PROXY", &proxy_url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    let summary = json(&output);
    assert_eq!(summary["strategies"]["lm_modify"]["candidates"], 1, "{summary:#}");
    assert_eq!(bodies.lock().unwrap().len(), 4, "the model server answered directly");
    assert_eq!(proxied.load(std::sync::atomic::Ordering::SeqCst), 0, "requests (and the key) went through the proxy");
}
