//! `cargo bench --bench eval [-- N]`: bugsmith's `eval` against SWE-smith 0.0.9's `harness.eval`
//! on the same N instances (default 12) of the bundled example, the same gold predictions and
//! the same Docker image, in one run: instances evaluated per minute for each (2 workers) and
//! whether both resolved the same set. Needs Docker with the local base image.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;

use common::{bugsmith_in, drive, fresh_run_id, json, manifest, shared_cache};

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(12);
    let cache = shared_cache();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile.yaml");
    let p = profile.to_str().unwrap();
    let source = manifest().join("tests/fixtures/repos/inventory");
    let run = |args: &[&str]| json(&bugsmith_in(args, &cache, Some(dir.path())));
    assert!(
        bugsmith_in(&["profile", "init", source.to_str().unwrap(), "-o", p], &cache, Some(dir.path())).status.success()
    );
    let generated = run(&["gen", p, "--max-bugs", "2", "--json"]);
    run(&["validate", p, "--backend", "docker", "--json"]);
    run(&["gather", p, "--json"]);
    let repo_name = generated["repo_name"].as_str().unwrap();
    let all: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("logs/task_insts").join(format!("{repo_name}.json"))).unwrap(),
    )
    .unwrap();
    let n = n.min(all.len());
    let subset = dir.path().join("subset.json");
    std::fs::write(&subset, serde_json::to_string(&all[..n]).unwrap()).unwrap();
    let module = dir.path().join("bench_profile.py");
    assert!(
        bugsmith_in(&["export", "swesmith-profile", p, "-o", module.to_str().unwrap()], &cache, Some(dir.path()))
            .status
            .success()
    );

    let ours = run(&[
        "eval",
        subset.to_str().unwrap(),
        "gold",
        "--profile",
        p,
        "--backend",
        "docker",
        "-j",
        "2",
        "--redo",
        "--run-id",
        "bench",
        "--json",
    ]);
    let theirs = drive(
        &dir.path().join("swesmith"),
        &["swesmith-eval", module.to_str().unwrap(), subset.to_str().unwrap(), &fresh_run_id("bench"), "gold", "2"],
    );
    let ids = |value: &serde_json::Value, key: &str| -> BTreeSet<String> {
        value[key].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    };
    let (our_seconds, their_seconds) = (ours["seconds"].as_f64().unwrap(), theirs["seconds"].as_f64().unwrap());
    let (our_rate, their_rate) = (n as f64 * 60.0 / our_seconds, n as f64 * 60.0 / their_seconds);
    println!(
        "{n} instances of {repo_name}, gold predictions, Docker, 2 workers (evaluation only; the environment exists)"
    );
    println!(
        "  bugsmith eval:          {our_seconds:>7.1} s  {our_rate:>7.1} instances/min  resolved {}",
        ours["resolved_instances"]
    );
    println!(
        "  SWE-smith harness.eval: {their_seconds:>7.1} s  {their_rate:>7.1} instances/min  resolved {}",
        theirs["resolved"]
    );
    println!(
        "  speed-up {:.1}x; same resolved set: {}",
        our_rate / their_rate,
        ids(&ours, "resolved_ids") == ids(&theirs, "ids_resolved")
    );
}
