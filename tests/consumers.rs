//! The consumers' own code on bugsmith's output (Docker backend, the bundled example): SWE-smith
//! 0.0.9's `harness.eval` with the exported profile, its `gather` on bugsmith's validation logs,
//! SWE-agent's reset commands inside the agent image, and SWE-bench 4.1.0's `run_evaluation`
//! on the export. Their Python packages are installed from PyPI, pinned, in a venv under the
//! target directory; only their network touch points are replaced (see `fixtures/consumers/drive.py`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{bugsmith_in, docker_ready, drive, fresh_run_id, json, manifest, shared_cache};
use serde_json::Value;

struct Gathered {
    dir: PathBuf,
    profile: PathBuf,
    repo_name: String,
    instances: Vec<Value>,
}

/// The bundled example validated with the Docker backend and gathered: an agent image.
fn gathered() -> &'static Gathered {
    static ONCE: OnceLock<Gathered> = OnceLock::new();
    ONCE.get_or_init(|| {
        let cache = shared_cache();
        let dir = Box::leak(Box::new(tempfile::tempdir().unwrap())).path().to_path_buf();
        let profile = dir.join("profile.yaml");
        let source = manifest().join("tests/fixtures/repos/inventory");
        let p = profile.to_str().unwrap();
        let run = |args: &[&str]| json(&bugsmith_in(args, &cache, Some(&dir)));
        assert!(
            bugsmith_in(&["profile", "init", source.to_str().unwrap(), "-o", p], &cache, Some(&dir)).status.success()
        );
        let generated = run(&["gen", p, "--max-bugs", "1", "--json"]);
        run(&["validate", p, "--backend", "docker", "--json"]);
        let summary = run(&["gather", p, "--json"]);
        let agent = summary["agent_environments"].to_string();
        assert!(agent.contains("agent image"), "{summary:#}");
        let repo_name = generated["repo_name"].as_str().unwrap().to_string();
        let file = dir.join("logs/task_insts").join(format!("{repo_name}.json"));
        let instances: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        assert!(instances.len() >= 3, "{summary:#}");
        Gathered { dir, profile, repo_name, instances }
    })
}

/// Writes the first `n` instances to a file of their own.
fn subset(g: &Gathered, n: usize, name: &str) -> PathBuf {
    let path = g.dir.join(name);
    std::fs::write(&path, serde_json::to_string(&g.instances[..n]).unwrap()).unwrap();
    path
}

fn image(g: &Gathered) -> String {
    let text = std::fs::read_to_string(&g.profile).unwrap();
    text.lines().find_map(|l| l.strip_prefix("image_name: ")).unwrap().trim().to_string()
}

/// Exports the profile as SWE-smith's Python module `name`.
fn swesmith_profile(g: &Gathered, name: &str) -> PathBuf {
    let module = g.dir.join(name);
    let args = ["export", "swesmith-profile", g.profile.to_str().unwrap(), "-o", module.to_str().unwrap()];
    assert!(bugsmith_in(&args, &shared_cache(), Some(&g.dir)).status.success());
    module
}

fn empty_predictions(g: &Gathered, n: usize, path: &Path) {
    let lines: String = g.instances[..n]
        .iter()
        .map(|i| {
            format!(
                "{}\n",
                serde_json::json!({"instance_id": i["instance_id"], "model_patch": "", "model_name_or_path": "empty"})
            )
        })
        .collect();
    std::fs::write(path, lines).unwrap();
}

/// `git rev-parse` in the mirror.
fn mirror_rev(g: &Gathered, rev: &str) -> String {
    let mirror = g.dir.join("logs/mirrors").join(format!("{}.git", g.repo_name));
    let out = Command::new("git").arg("-C").arg(mirror).args(["rev-parse", rev]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_agent_image_resets_offline_as_swe_agent_and_swe_smith_do() {
    if !docker_ready() {
        return;
    }
    let g = gathered();
    let image = image(g);
    let id = g.instances[0]["instance_id"].as_str().unwrap();
    // SWE-agent at 3ea751c (2026-07-16), at 39c0df10 (reset --hard ID) and at v1.1.0, then SWE-smith's harness.
    let sequences = [
        format!(
            "export ROOT=$(pwd -P) && git fetch && git status && git restore . && git reset --hard && git checkout {id} && git clean -fdq"
        ),
        format!("export ROOT=$(pwd -P) && git status && git restore . && git reset --hard {id} && git clean -fdq"),
        format!("export ROOT=$(pwd -P) && git status && git fetch && git checkout {id} && git clean -fdq"),
        format!("git fetch; git checkout {id} && git checkout HEAD~1"),
    ];
    let tip = mirror_rev(g, id);
    let bug = mirror_rev(g, &format!("{id}~1"));
    for (i, reset) in sequences.iter().enumerate() {
        let script = format!(
            "cd /testbed && git status --porcelain | wc -l && {reset} && git rev-parse HEAD && python -m pytest -q -p no:cacheprovider >/dev/null 2>&1; echo tests=$?"
        );
        let out = Command::new("docker")
            .args(["run", "--rm", "--network", "none", &image, "bash", "-c", &script])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{reset}: {text}{}", String::from_utf8_lossy(&out.stderr));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0].trim(), "0", "the image's work tree is clean: {text}");
        let expected = if i == 3 { &bug } else { &tip };
        assert!(lines.contains(&expected.as_str()), "{reset}: HEAD is not {expected}: {text}");
        // At the tip the F2P tests are gone (the rest pass); at the bug commit they fail.
        let tests = if i == 3 { "tests=1" } else { "tests=0" };
        assert!(text.contains(tests), "{reset}: {text}");
    }
}

#[test]
fn swe_smith_harness_resolves_every_gold_patch_and_no_empty_one() {
    if !docker_ready() {
        return;
    }
    let g = gathered();
    let module = swesmith_profile(g, "bugsmith_profile.py");
    let dataset = subset(g, 3, "swesmith-subset.json");
    let work = g.dir.join("swesmith-eval");
    let (m, d) = (module.to_str().unwrap(), dataset.to_str().unwrap());
    let gold = drive(&work, &["swesmith-eval", m, d, &fresh_run_id("gold"), "gold", "2"]);
    assert_eq!((gold["resolved"].as_u64(), gold["total"].as_u64()), (Some(3), Some(3)), "{gold:#}");
    let empty = g.dir.join("empty.jsonl");
    empty_predictions(g, 3, &empty);
    let none = drive(&work, &["swesmith-eval", m, d, &fresh_run_id("empty"), empty.to_str().unwrap(), "2"]);
    assert_eq!((none["resolved"].as_u64(), none["unresolved"].as_u64()), (Some(0), Some(3)), "{none:#}");
}

#[test]
fn swe_smith_gather_reads_bugsmith_validation_logs_into_the_same_instances() {
    if !docker_ready() {
        return;
    }
    let g = gathered();
    let module = swesmith_profile(g, "bugsmith_profile_gather.py");
    // SWE-smith writes logs/task_insts/<repo_name>.json: it works on a copy of the logs.
    let work = g.dir.join("swesmith-gather");
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let copied = Command::new("cp").arg("-r").arg(g.dir.join("logs/run_validation")).arg(&logs).status().unwrap();
    assert!(copied.success());
    let remote = work.join("remote.git");
    let mirror = g.dir.join("logs/mirrors").join(format!("{}.git", g.repo_name));
    let cloned = Command::new("git")
        .args(["clone", "-q", "--bare", "--single-branch", "--branch", "main"])
        .arg(&mirror)
        .arg(&remote)
        .status()
        .unwrap();
    assert!(cloned.success());
    let validation = format!("logs/run_validation/{}", g.repo_name);
    let theirs = drive(&work, &["swesmith-gather", module.to_str().unwrap(), &validation, remote.to_str().unwrap()]);
    let theirs = theirs.as_array().unwrap();
    assert_eq!(theirs.len(), g.instances.len(), "the same instances");
    for (a, b) in theirs.iter().zip(&g.instances) {
        for key in ["instance_id", "patch", "FAIL_TO_PASS", "PASS_TO_PASS", "image_name", "repo"] {
            assert_eq!(a[key], b[key], "{key} of {}", b["instance_id"]);
        }
    }
}

#[test]
fn swe_bench_run_evaluation_resolves_the_exports_gold_patches_and_no_empty_one() {
    if !docker_ready() {
        return;
    }
    let g = gathered();
    let dataset = subset(g, 3, "swebench-subset.json");
    let exported = g.dir.join("swebench.jsonl");
    let out = bugsmith_in(
        &[
            "export",
            "swebench",
            dataset.to_str().unwrap(),
            "--profile",
            g.profile.to_str().unwrap(),
            "-o",
            exported.to_str().unwrap(),
        ],
        &shared_cache(),
        Some(&g.dir),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let work = g.dir.join("swebench-eval");
    let (spec, data) = (g.dir.join("swebench_spec.py"), exported.to_str().unwrap());
    let gold = drive(&work, &["swebench-eval", spec.to_str().unwrap(), data, &fresh_run_id("gold"), "gold", "2"]);
    assert_eq!(gold["resolved_instances"], 3, "{gold:#}");
    let empty = g.dir.join("empty-swebench.jsonl");
    empty_predictions(g, 3, &empty);
    let run = fresh_run_id("empty");
    let none = drive(&work, &["swebench-eval", spec.to_str().unwrap(), data, &run, empty.to_str().unwrap(), "2"]);
    assert_eq!(
        (none["resolved_instances"].as_u64(), none["empty_patch_instances"].as_u64()),
        (Some(0), Some(3)),
        "{none:#}"
    );
}

#[test]
fn docker_eval_scores_like_the_local_backend() {
    if !docker_ready() {
        return;
    }
    let g = gathered();
    let file = g.dir.join("logs/task_insts").join(format!("{}.json", g.repo_name));
    let summary = json(&bugsmith_in(
        &[
            "eval",
            file.to_str().unwrap(),
            "gold",
            "--profile",
            g.profile.to_str().unwrap(),
            "--backend",
            "docker",
            "--run-id",
            "docker-gold",
            "--json",
        ],
        &shared_cache(),
        Some(&g.dir),
    ));
    assert_eq!(summary["resolved_instances"].as_u64().unwrap() as usize, g.instances.len(), "{summary:#}");
}
