//! The adaptive budget on a real sdist: rounds of gen and validate that spend exactly the total,
//! the same way for one seed; `gen` alone refuses it.

mod common;

use std::path::Path;
use std::process::Command;

use common::{manifest, shared_cache, stderr, stdout};

fn recipe(dir: &Path, total: usize) -> std::path::PathBuf {
    let path = dir.join("budget.yaml");
    std::fs::write(
        &path,
        format!(
            "version: 1\nname: budgeted\nsource: pypi:tinydb==4.8.2\nseed: 24\nvalidate:\n  jobs: 2\nissues:\n  template: static\nbudget:\n  strategy: adaptive\n  total: {total}\n  rounds: 3\n"
        ),
    )
    .unwrap();
    path
}

fn bugsmith(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bugsmith"))
        .args(args)
        .current_dir(dir)
        .env("BUGSMITH_STRATEGIES", manifest().join("strategies"))
        .env("BUGSMITH_CACHE", shared_cache())
        .env("BUGSMITH_NO_PROGRESS", "1")
        .output()
        .unwrap()
}

/// The candidate files a run made, by name.
fn candidates(out: &Path) -> Vec<String> {
    let mut names: Vec<String> = walkdir::WalkDir::new(out.join("bug_gen"))
        .into_iter()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("bug__"))
        .collect();
    names.sort();
    names
}

#[test]
fn an_adaptive_budget_spends_exactly_its_total_the_same_way_for_one_seed() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let file = recipe(dir.path(), 40);
        let out = bugsmith(&["run", file.to_str().unwrap()], dir.path());
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
        assert!(stdout(&out).contains("budget: 40 of 40 candidates over"), "{}", stdout(&out));
        let made = candidates(&dir.path().join("logs"));
        assert_eq!(made.len(), 40);
        let spending: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("logs/runs/budgeted.budget.json")).unwrap())
                .unwrap();
        let rounds = spending["rounds"].as_array().unwrap();
        assert!(rounds.len() >= 2, "{spending:#}");
        // Every strategy that could make candidates got its floor in every round after the first.
        let given: u64 =
            rounds.iter().flat_map(|r| r["given"].as_object().unwrap().values()).map(|v| v.as_u64().unwrap()).sum();
        assert!(given >= 40);
        // Validated as it went: every candidate has a report.
        let reports = walkdir::WalkDir::new(dir.path().join("logs/run_validation"))
            .into_iter()
            .flatten()
            .filter(|e| e.file_name() == "report.json")
            .count();
        assert_eq!(reports, 40);
        runs.push((made, spending["rounds"].clone()));
    }
    assert_eq!(runs[0], runs[1], "one seed, one way of spending");
}

#[test]
fn gen_alone_refuses_a_budget_and_says_it_needs_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = recipe(dir.path(), 10);
    let out = bugsmith(
        &[
            "gen",
            manifest().join("tests/fixtures/repos/inventory").to_str().unwrap(),
            "--recipe",
            file.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bugsmith run"), "{}", stderr(&out));
}
