//! Benchmark: validation at the cost of the covering tests against whole suites, on a real sdist
//! with a large suite (default `pypi:python-dateutil==2.9.0.post0`), local backend, one run. The same candidates
//! are validated both ways (`--select covering` with the default 5 % verify sample, whose full
//! runs count; `--select all`); prints candidates/min of each (after the one-off baseline, and
//! with it), their ratio, and how often verdicts, F2P and P2P agree over all candidates.
//!
//! Run: `cargo bench --bench selection [-- SOURCE [MAX_BUGS_PER_STRATEGY [STRATEGY,…]]]` (default:
//! every procedural strategy).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

fn bugsmith(args: &[&str], cache: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_bugsmith"))
        .args(args)
        .env("BUGSMITH_CACHE", cache)
        .env("BUGSMITH_NO_PROGRESS", "1")
        .output()
        .expect("bugsmith runs");
    assert!(out.status.success(), "bugsmith {args:?}:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn reports(out: &Path, repo_name: &str) -> BTreeMap<String, Value> {
    let dir = out.join("run_validation").join(repo_name);
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("report.json").is_file())
        .map(|p| {
            let r: Value = serde_json::from_str(&std::fs::read_to_string(p.join("report.json")).unwrap()).unwrap();
            (r["instance_id"].as_str().unwrap().to_string(), r)
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let source = args.first().cloned().unwrap_or_else(|| "pypi:python-dateutil==2.9.0.post0".into());
    let max_bugs = args.get(1).cloned().unwrap_or_else(|| "2".into());
    let cache = std::env::var_os("BUGSMITH_CACHE")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-cache"), std::path::PathBuf::from);
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile.yaml");
    let p = profile.to_str().unwrap();
    bugsmith(&["profile", "init", &source, "-o", p], &cache);
    let gen_out = dir.path().join("gen");
    let mut gen_args = vec!["gen", p, "--out", gen_out.to_str().unwrap(), "--max-bugs", &max_bugs, "--json"];
    for strategy in args.get(2).map_or("", String::as_str).split(',').filter(|s| !s.is_empty()) {
        gen_args.extend(["--strategy", strategy]);
    }
    let summary = bugsmith(&gen_args, &cache);
    let repo_name = summary["repo_name"].as_str().unwrap().to_string();
    let candidates = gen_out.join("bug_gen").join(&repo_name);
    // One run each way, same candidates, same environment (built before the clocks start).
    let all_out = dir.path().join("all");
    let covering_out = dir.path().join("covering");
    bugsmith(&["env", "build", p, "--out", all_out.to_str().unwrap()], &cache);
    // The first candidate alone first: the baseline (and for `covering` its coverage run),
    // timed apart; then the rest, which is what a long run spends its time on.
    let first = std::fs::read_dir(&candidates)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("a candidate folder");
    let warm = dir.path().join("warm");
    std::fs::create_dir_all(&warm).unwrap();
    let copy = Command::new("cp").arg("-r").arg(&first).arg(&warm).status().unwrap();
    assert!(copy.success());
    let mut figures = Vec::new();
    for (mode, out) in [("all", &all_out), ("covering", &covering_out)] {
        let validate = |from: &Path| {
            let started = Instant::now();
            let summary = bugsmith(
                &[
                    "validate",
                    p,
                    "--select",
                    mode,
                    "--out",
                    out.to_str().unwrap(),
                    "--candidates",
                    from.to_str().unwrap(),
                    "--json",
                ],
                &cache,
            );
            (summary, started.elapsed().as_secs_f64())
        };
        let (warm_summary, setup) = validate(&warm);
        let warm_ran = warm_summary["ran"].as_u64().unwrap_or(0);
        let (summary, seconds) = validate(&candidates);
        let ran = summary["ran"].as_u64().unwrap_or(0);
        println!(
            "{mode:>8}: {ran} candidates in {seconds:.1} s: {:.1} candidates/min ({:.1} with the first {warm_ran} and the baseline{}: {setup:.0} s); {} tests run; baseline {} tests; {}",
            ran as f64 * 60.0 / seconds,
            (ran + warm_ran) as f64 * 60.0 / (seconds + setup),
            if mode == "covering" { " and its coverage run" } else { "" },
            summary["tests_run"],
            summary["baseline_tests"],
            summary["coverage"].as_str().unwrap_or("")
        );
        if mode == "covering" {
            println!(
                "          selection {}, verified {}, fallback {}",
                summary["selection"], summary["verified"], summary["fallback"]
            );
        }
        figures.push(ran as f64 * 60.0 / seconds);
    }
    println!("   ratio: {:.1}x candidates/min with covering", figures[1] / figures[0]);
    let (all, covering) = (reports(&all_out, &repo_name), reports(&covering_out, &repo_name));
    let total = all.len();
    let same = |key: &str| all.iter().filter(|(id, r)| covering.get(*id).is_some_and(|c| c[key] == r[key])).count();
    let percent = |n: usize| n as f64 * 100.0 / total.max(1) as f64;
    let (verdicts, f2p, p2p) = (same("verdict"), same("FAIL_TO_PASS"), same("PASS_TO_PASS"));
    println!(
        "agreement over {total} candidates: verdicts {verdicts} ({:.1} %), F2P {f2p} ({:.1} %), P2P {p2p} ({:.1} %)",
        percent(verdicts),
        percent(f2p),
        percent(p2p)
    );
    // Where `covering` spent its test time, and why some candidates ran whole suites.
    let mut by_selection: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for c in covering.values() {
        let entry = by_selection.entry(c["selection"].as_str().unwrap_or("?").to_string()).or_default();
        entry.0 += 1;
        entry.1 += c["test_seconds"].as_f64().unwrap_or(0.0);
    }
    for (selection, (n, seconds)) in &by_selection {
        println!("  {selection:>9}: {n} candidates, {seconds:.0} test seconds");
    }
    for (id, c) in &covering {
        if let Some(why) = c["whole_suite_because"].as_str() {
            println!("  whole suite: {id}: {why}");
        }
    }
    for (id, r) in &all {
        if let Some(c) = covering.get(id)
            && (c["verdict"] != r["verdict"] || c["FAIL_TO_PASS"] != r["FAIL_TO_PASS"])
        {
            println!(
                "  differs: {id}: all {} {}, covering {} {} ({})",
                r["verdict"], r["FAIL_TO_PASS"], c["verdict"], c["FAIL_TO_PASS"], c["selection"]
            );
        }
    }
}
