//! `bugsmith stats [OUT...] [--json]`: yield analytics per strategy, read from the validation
//! reports under one or more output directories (a run, several, a campaign or its shards):
//! candidates validated, valid ones, the yield, the mean F2P count and lines changed of the
//! valid ones, and test seconds spent per valid instance.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::context::Outcome;
use crate::records::{Report, Verdict};

/// One strategy's figures.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct StrategyStats {
    /// Validated candidates (reports).
    pub candidates: usize,
    /// Valid ones.
    pub valid: usize,
    /// `valid / candidates`.
    #[serde(rename = "yield")]
    pub yield_rate: f64,
    /// Mean F2P count of the valid ones.
    pub mean_f2p: f64,
    /// Mean lines changed (added plus removed) of the valid ones.
    pub mean_lines_changed: f64,
    /// Test seconds over all its candidates per valid one (all of them when none is valid).
    pub test_seconds_per_valid: f64,
    /// Test seconds over all its candidates.
    pub test_seconds: f64,
}

/// Every strategy's figures, and how many reports were read.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Stats {
    /// Reports read.
    pub reports: usize,
    /// Per strategy.
    pub strategies: BTreeMap<String, StrategyStats>,
}

/// Reads every report under `<out>/run_validation/<repo_name>/<instance_id>/` of each output.
pub fn collect(outputs: &[PathBuf]) -> Stats {
    let mut stats = Stats::default();
    let mut sums: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    // An output named twice (or through another path) counts once.
    let mut read = std::collections::HashSet::new();
    for out in outputs {
        let Ok(repos) = std::fs::read_dir(out.join("run_validation")) else { continue };
        for repo in repos.flatten() {
            let repo_name = repo.file_name().to_string_lossy().to_string();
            for folder in std::fs::read_dir(repo.path()).into_iter().flatten().flatten() {
                if !read.insert(folder.path().canonicalize().unwrap_or_else(|_| folder.path())) {
                    continue;
                }
                let Some(report) = read_report(&folder.path()) else { continue };
                let strategy = crate::ids::InstanceId::parse(&repo_name, &report.instance_id)
                    .map_or_else(|| report.instance_id.clone(), |id| id.strategy().to_string());
                let entry = stats.strategies.entry(strategy.clone()).or_default();
                let (f2p, lines) = sums.entry(strategy).or_default();
                stats.reports += 1;
                entry.candidates += 1;
                entry.test_seconds += report.test_seconds;
                if report.verdict == Verdict::Valid {
                    entry.valid += 1;
                    *f2p += report.grade.fail_to_pass.len();
                    *lines += lines_changed(&folder.path().join("patch.diff"));
                }
            }
        }
    }
    for (strategy, entry) in &mut stats.strategies {
        let (f2p, lines) = sums.get(strategy).copied().unwrap_or_default();
        let valid = entry.valid.max(1) as f64;
        entry.yield_rate = entry.valid as f64 / entry.candidates.max(1) as f64;
        entry.mean_f2p = if entry.valid == 0 { 0.0 } else { f2p as f64 / valid };
        entry.mean_lines_changed = if entry.valid == 0 { 0.0 } else { lines as f64 / valid };
        entry.test_seconds_per_valid = entry.test_seconds / valid;
    }
    stats
}

fn read_report(folder: &Path) -> Option<Report> {
    serde_json::from_str(&std::fs::read_to_string(folder.join("report.json")).ok()?).ok()
}

/// Added plus removed lines of a patch file (0 when it is missing).
fn lines_changed(patch: &Path) -> usize {
    std::fs::read_to_string(patch).map_or(0, |text| {
        text.lines()
            .filter(|l| (l.starts_with('+') && !l.starts_with("+++")) || (l.starts_with('-') && !l.starts_with("---")))
            .count()
    })
}

/// `bugsmith stats`.
pub fn command(outputs: &[PathBuf], json: bool) -> Outcome {
    let stats = collect(outputs);
    crate::context::print_summary(json, &stats, print_table);
    Ok(if stats.reports == 0 { crate::EXIT_FAILURE } else { crate::EXIT_OK })
}

fn print_table(stats: &Stats) {
    if stats.reports == 0 {
        println!(
            "no validation reports (run_validation/<repo_name>/<instance_id>/report.json) under the given folders"
        );
        return;
    }
    println!(
        "{:<28} {:>10} {:>6} {:>7} {:>9} {:>19} {:>22}",
        "strategy", "candidates", "valid", "yield", "mean F2P", "mean lines changed", "test s per valid"
    );
    let mut total = StrategyStats::default();
    for (strategy, s) in &stats.strategies {
        println!(
            "{strategy:<28} {:>10} {:>6} {:>6.1}% {:>9.1} {:>19.1} {:>22.1}",
            s.candidates,
            s.valid,
            s.yield_rate * 100.0,
            s.mean_f2p,
            s.mean_lines_changed,
            s.test_seconds_per_valid
        );
        total.candidates += s.candidates;
        total.valid += s.valid;
        total.test_seconds += s.test_seconds;
    }
    println!(
        "{:<28} {:>10} {:>6} {:>6.1}% {:>9} {:>19} {:>22.1}",
        "all",
        total.candidates,
        total.valid,
        total.valid as f64 * 100.0 / total.candidates.max(1) as f64,
        "",
        "",
        total.test_seconds / total.valid.max(1) as f64
    );
}
