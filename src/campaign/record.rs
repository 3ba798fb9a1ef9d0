//! `campaign.json`: what happened to each source of a campaign, counted from the files its
//! stages wrote (so a resumed or merged campaign counts the same way), and the totals.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::records::{Report, Verdict};

/// How a source ended.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every stage finished.
    #[default]
    Ok,
    /// A stage failed.
    Failed,
    /// The time budget ended first: what was valid is gathered, the rest left.
    Partial,
}

/// One source in `campaign.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RepoRecord {
    /// Position in the campaign file's sources (0-based).
    pub index: usize,
    /// The source as the campaign file gives it.
    pub source: String,
    /// Its run name (`<out>/runs/<slug>.json`).
    pub slug: String,
    /// `owner__repo.<commit8>`, once a profile exists.
    pub repo_name: Option<String>,
    /// ok, failed or partial.
    pub status: Status,
    /// The stage that failed or was cut short.
    pub stage: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// Where to read more, relative to the output directory.
    pub log: Option<String>,
    /// Tests in the baseline.
    pub tests: usize,
    /// Candidates generated.
    pub candidates: usize,
    /// Candidates validated (with a report).
    pub validated: usize,
    /// Valid candidates (some test fails with the bug, passes without).
    pub valid: usize,
    /// Task instances gathered.
    pub instances: usize,
    /// Seconds per stage (env, gen, validate, gather, issues).
    pub seconds: BTreeMap<String, f64>,
    /// Per strategy: candidates validated and valid.
    pub per_strategy: BTreeMap<String, StrategyYield>,
    /// F2P count → instances with it.
    pub f2p_counts: BTreeMap<usize, usize>,
    /// Lines changed by the patch → instances.
    pub lines_changed: BTreeMap<usize, usize>,
}

/// Candidates and valid ones.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StrategyYield {
    /// Validated candidates.
    pub candidates: usize,
    /// Valid ones.
    pub valid: usize,
}

/// `campaign.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CampaignRecord {
    /// The campaign's name.
    pub name: String,
    /// The shards this output holds (`1/2`; several after a merge), none for a whole run.
    #[serde(default)]
    pub shards: Vec<String>,
    /// Sources, in the campaign file's order.
    pub repos: Vec<RepoRecord>,
    /// Over all sources.
    pub totals: Totals,
    /// Wall-clock seconds of the invocations that wrote this output (summed over shards).
    pub wall_seconds: f64,
    /// When this file was written (RFC 3339).
    pub created_at: String,
}

/// Campaign totals.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Totals {
    /// Sources.
    pub repos: usize,
    /// By status.
    pub ok: usize,
    /// Sources that failed.
    pub failed: usize,
    /// Sources the budget cut short.
    pub partial: usize,
    /// Candidates generated.
    pub candidates: usize,
    /// Valid candidates.
    pub valid: usize,
    /// Task instances.
    pub instances: usize,
    /// Seconds per stage over all sources.
    pub seconds: BTreeMap<String, f64>,
    /// Per strategy over all sources.
    pub per_strategy: BTreeMap<String, StrategyYield>,
}

impl CampaignRecord {
    /// Recomputes the totals from the repositories.
    pub fn total(&mut self) {
        let mut totals = Totals { repos: self.repos.len(), ..Totals::default() };
        for repo in &self.repos {
            match repo.status {
                Status::Ok => totals.ok += 1,
                Status::Failed => totals.failed += 1,
                Status::Partial => totals.partial += 1,
            }
            totals.candidates += repo.candidates;
            totals.valid += repo.valid;
            totals.instances += repo.instances;
            for (stage, s) in &repo.seconds {
                *totals.seconds.entry(stage.clone()).or_default() += s;
            }
            for (strategy, y) in &repo.per_strategy {
                let t = totals.per_strategy.entry(strategy.clone()).or_default();
                t.candidates += y.candidates;
                t.valid += y.valid;
            }
        }
        self.totals = totals;
    }
}

/// The strategy of an instance id `<repo_name>.<strategy>__<hash8>`.
pub fn strategy_of<'a>(instance_id: &'a str, repo_name: &str) -> &'a str {
    let rest = instance_id.strip_prefix(repo_name).and_then(|r| r.strip_prefix('.')).unwrap_or(instance_id);
    rest.rsplit_once("__").map_or(rest, |(strategy, _)| strategy)
}

/// Fills a record's counts from what the stages wrote under `out` for `repo_name`.
pub fn count_outputs(record: &mut RepoRecord, out: &Path, repo_name: &str) {
    let run_dir = out.join("run_validation").join(repo_name);
    let baseline = std::fs::read_to_string(run_dir.join(format!("{repo_name}.ref")).join("baseline.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    record.tests = baseline.as_ref().and_then(|b| b["baseline"]["tests"].as_object()).map_or(0, serde_json::Map::len);
    record.candidates = walkdir::WalkDir::new(out.join("bug_gen").join(repo_name))
        .into_iter()
        .flatten()
        .filter(|e| {
            e.file_name().to_string_lossy().starts_with("bug__") && e.path().extension().is_some_and(|x| x == "diff")
        })
        .count();
    record.per_strategy.clear();
    record.validated = 0;
    record.valid = 0;
    for entry in std::fs::read_dir(&run_dir).into_iter().flatten().flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("report.json")) else { continue };
        let Ok(report) = serde_json::from_str::<Report>(&text) else { continue };
        let y = record.per_strategy.entry(strategy_of(&report.instance_id, repo_name).to_string()).or_default();
        y.candidates += 1;
        record.validated += 1;
        if report.verdict == Verdict::Valid {
            y.valid += 1;
            record.valid += 1;
        }
    }
    let instances =
        crate::records::read_instances(&out.join("task_insts").join(format!("{repo_name}.json"))).unwrap_or_default();
    record.instances = instances.len();
    record.f2p_counts.clear();
    record.lines_changed.clear();
    for instance in &instances {
        *record.f2p_counts.entry(instance.fail_to_pass.len()).or_default() += 1;
        *record.lines_changed.entry(instance.lines_changed).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strategy_is_read_from_the_instance_id() {
        assert_eq!(strategy_of("o__r.1234abcd.func_pm_op_swap__zz99aa11", "o__r.1234abcd"), "func_pm_op_swap");
        assert_eq!(strategy_of("o__r.1234abcd.combine_file__aa", "o__r.1234abcd"), "combine_file");
    }

    #[test]
    fn totals_add_up_the_repositories() {
        let repo = |status, valid| RepoRecord {
            status,
            valid,
            candidates: 10,
            per_strategy: BTreeMap::from([("s".to_string(), StrategyYield { candidates: 10, valid })]),
            ..RepoRecord::default()
        };
        let mut record = CampaignRecord {
            repos: vec![repo(Status::Ok, 3), repo(Status::Failed, 0), repo(Status::Partial, 2)],
            ..CampaignRecord::default()
        };
        record.total();
        assert_eq!((record.totals.ok, record.totals.failed, record.totals.partial), (1, 1, 1));
        assert_eq!((record.totals.candidates, record.totals.valid), (30, 5));
        assert_eq!(record.totals.per_strategy["s"], StrategyYield { candidates: 30, valid: 5 });
    }
}
