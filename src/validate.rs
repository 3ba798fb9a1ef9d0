//! Validation: run each candidate's tests in a warm worker, compare with the clean baseline and
//! write SWE-smith's `run_validation/<repo_name>/<instance_id>/report.json`. Resumable: a report
//! whose key (environment, patch, test command) matches is not run again.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, Worker};
use crate::console;
use crate::context::{Context, Error, Outcome};
use crate::coverage::TestCoverage;
use crate::files::write_atomic;
use crate::grading::{self, Baseline, Grade, TestRun};
use crate::patch::hash8;
use crate::profile::Profile;
use crate::progress::{Problem, Progress};
pub use crate::records::{
    ErrorKind, OUTPUT_END, OUTPUT_START, P2pFrom, Report, SelectionUsed, Verdict, with_markers, without_markers,
};
use crate::settings::{Selector, ValidateSettings};
use crate::source::Checkout;
use crate::testrun::{RunOptions, baseline_coverage, pop, run_with, selected_timeout};
pub use crate::testrun::{
    RunResult, baseline, candidate_timeout, eval_script, missing_dependency, parse_runner_output, refused_symlink,
    run_once, runner_env,
};

/// A candidate patch on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CandidateFile {
    /// `<repo_name>.<strategy>__<hash8>`.
    pub instance_id: String,
    /// The strategy id.
    pub strategy: String,
    /// The `bug__*.diff` file.
    pub path: PathBuf,
}

/// The strategy of a candidate's local id (`<strategy>__<hash8>`, or `pr_<n>` for PR mirrors).
pub fn strategy_of(id: &str) -> String {
    crate::ids::LocalId::parse(id).strategy().to_string()
}

/// Every `bug__<strategy>__<hash>.diff` under `dir`, sorted by instance id.
pub fn find_candidates(dir: &Path, repo_name: &str) -> Vec<CandidateFile> {
    let mut found: Vec<CandidateFile> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let id = name.strip_prefix("bug__")?.strip_suffix(".diff")?.to_string();
            Some(CandidateFile {
                instance_id: format!("{repo_name}.{id}"),
                strategy: strategy_of(&id),
                path: e.into_path(),
            })
        })
        .collect();
    found.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    found.dedup_by(|a, b| a.instance_id == b.instance_id);
    found
}

/// Settings of a validation run.
pub struct Settings {
    /// Parallel workers.
    pub jobs: usize,
    /// Seconds per candidate; default from the profile or `max(20, 5 × baseline)`.
    pub timeout: Option<u64>,
    /// A worker is replaced after this many candidates.
    pub recycle_after: usize,
    /// The `run_validation/<repo_name>` folder.
    pub run_dir: PathBuf,
    /// Which tests each candidate runs.
    pub choice: TestChoice,
    /// No candidate starts after this; the rest are left for a later run.
    pub deadline: Option<Instant>,
}

/// How candidates' tests are chosen: see `ValidateSettings`.
#[derive(Clone, Debug, PartialEq)]
pub struct TestChoice {
    /// `covering` or `all`.
    pub select: Selector,
    /// P2P from a full second run.
    pub exact: bool,
    /// Percent of candidates checked against the full suite.
    pub verify: f64,
    /// Seed of the verify sample.
    pub seed: u64,
}

impl Default for TestChoice {
    fn default() -> TestChoice {
        TestChoice {
            select: Selector::Covering,
            exact: false,
            verify: crate::settings::defaults::VERIFY_PERCENT,
            seed: crate::settings::defaults::SEED,
        }
    }
}

/// Counts per strategy.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// `owner__repo.<commit8>`.
    pub repo_name: String,
    /// Backend used.
    pub backend: String,
    /// Environment id.
    pub env: String,
    /// Tests in the baseline, passing, flaky.
    pub baseline_tests: usize,
    /// Tests passing in every baseline run.
    pub baseline_passing: usize,
    /// Tests whose outcome differed between baseline runs.
    pub baseline_flaky: usize,
    /// Seconds per candidate run allowed.
    pub timeout: u64,
    /// Verdicts per strategy.
    pub strategies: BTreeMap<String, BTreeMap<Verdict, usize>>,
    /// Candidates whose report was already there.
    pub skipped_done: usize,
    /// Candidates run now.
    pub ran: usize,
    /// Wall time.
    pub seconds: f64,
    /// Candidates validated per minute (run now).
    pub per_minute: f64,
    /// How candidates' tests were chosen, counted (`covering`, `uncovered`, `all`).
    pub selection: BTreeMap<SelectionUsed, usize>,
    /// Tests run over all candidates (their sum).
    pub tests_run: usize,
    /// Per-test coverage: what it covers, or why there is none.
    pub coverage: String,
    /// Candidates also run through the full suite to check the selection.
    pub verified: usize,
    /// Where the check disagreed.
    pub disagreements: Vec<String>,
    /// Why the rest of the run used whole suites, when the check failed.
    pub fallback: Option<String>,
    /// Candidates not started because the time budget ran out.
    pub left: usize,
}

impl Summary {
    /// Candidates with this verdict, over all strategies.
    pub fn total(&self, verdict: Verdict) -> usize {
        self.strategies.values().filter_map(|v| v.get(&verdict)).sum()
    }
}

fn report_for(
    candidate: &CandidateFile,
    baseline: &Baseline,
    result: &RunResult,
    timeout: u64,
    backend: &str,
    key: String,
) -> Report {
    let incomplete = result.incomplete();
    let gradable = result.applied && !result.timed_out && result.broken.is_none() && incomplete.is_none();
    let grade = if gradable { grading::grade(baseline, &result.tests) } else { Grade::default() };
    let (verdict, error_kind, error) = if result.apply_failed {
        (Verdict::ApplyFailed, None, None)
    } else if result.timed_out {
        (Verdict::Timeout, None, None)
    } else if let Some(why) = &result.broken {
        (Verdict::Error, Some(ErrorKind::Infrastructure), Some(why.clone()))
    } else if let Some((kind, why)) = incomplete {
        (Verdict::Error, Some(kind), Some(why))
    } else if grade.fail_to_pass.is_empty() {
        (Verdict::NoTestBroken, None, None)
    } else if grade.pass_to_pass.is_empty() {
        (Verdict::NoPassToPass, None, None)
    } else {
        (Verdict::Valid, None, None)
    };
    // Exit 0 with expected tests missing is not a clean pass.
    let missing = baseline.tests.keys().any(|id| !result.tests.tests.contains_key(id));
    let exit_code_agrees = result.exit_code_agrees && !(result.exit_code == Some(0) && missing);
    Report {
        instance_id: candidate.instance_id.clone(),
        grade,
        timed_out: result.timed_out,
        timeout,
        verdict,
        patch_applied: result.applied,
        exit_code: result.exit_code,
        exit_code_agrees,
        results_from: result.source.to_string(),
        test_seconds: result.seconds,
        backend: backend.to_string(),
        error: error.or_else(|| result.apply_failed.then(|| crate::backend::tail(&result.output, 3))),
        error_kind,
        leaked_processes: result.leaked,
        selection: None,
        tests_run: None,
        p2p_from: None,
        whole_suite_because: None,
        key,
    }
}

/// The key of a candidate's report.
fn report_key(env_id: &str, patch: &str, profile: &Profile, mode: &str, baseline: &Baseline) -> String {
    let baseline = serde_json::to_string(&baseline.tests).unwrap_or_default();
    hash8(&format!("{env_id}\n{}\n{mode}\n{}\n{patch}", profile.test_setup(), hash8(&baseline)))
}

/// How one candidate's tests are chosen before it runs.
#[derive(Clone, Debug, PartialEq)]
enum Plan {
    /// No test executes its changes.
    Uncovered,
    /// These tests do (indices into the coverage's tests).
    Covering(Vec<usize>),
    /// The whole suite.
    All,
}

/// One candidate to validate.
struct Job {
    candidate: CandidateFile,
    patch: String,
    key: String,
    /// Its key when it runs the whole suite (after a fallback).
    key_all: String,
    plan: Plan,
    /// Why the plan is the whole suite.
    whole_suite_because: Option<String>,
    /// Also run through the full suite, to check the selection.
    verify: bool,
}

/// `<repo_name>.ref/coverage_check.json`: the verify sample's comparisons, and the fallback to
/// whole suites once one disagreed on F2P (kept on resume while the coverage is the same).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct CoverageCheck {
    /// Key of the coverage it checked.
    key: String,
    /// One entry per verified candidate.
    checked: Vec<CheckedCandidate>,
    /// Set when a disagreement switched the repository to whole suites.
    fallback: Option<String>,
}

/// The verify run of one candidate against its selected run.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CheckedCandidate {
    instance_id: String,
    agree: bool,
    selected: Verdict,
    full: Verdict,
    /// F2P only the full suite found (tests the selection missed).
    missed_f2p: Vec<String>,
    /// F2P only the selection found.
    extra_f2p: Vec<String>,
    /// Tests whose P2P membership differs.
    p2p_differences: usize,
}

/// What every worker shares during a run.
struct Shared<'a> {
    backend: &'a dyn Backend,
    profile: &'a Profile,
    checkout: &'a Checkout,
    baseline: &'a Baseline,
    coverage: Option<&'a TestCoverage>,
    settings: &'a Settings,
    timeout: u64,
    progress: &'a dyn Progress,
    tally: Mutex<Summary>,
    check: Mutex<CoverageCheck>,
    /// Set once the check disagreed: the rest runs whole suites.
    fallback: std::sync::atomic::AtomicBool,
    failure: Mutex<Option<String>>,
}

/// Validates candidates with `settings.jobs` workers; already finished ones are skipped. With
/// per-test coverage, each candidate runs only the tests that execute its changes (none: it is
/// decided without a run), a verify sample also runs the full suite first, and a disagreement
/// on F2P switches the rest of the run to whole suites.
#[allow(clippy::too_many_arguments)]
pub fn validate(
    backend: &dyn Backend,
    profile: &Profile,
    checkout: &Checkout,
    env_id: &str,
    candidates: &[CandidateFile],
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<Summary, Error> {
    let started = Instant::now();
    let mut first = backend.start_worker(profile, checkout, 0).map_err(|e| e.to_string())?;
    let baseline = baseline(first.as_mut(), profile, env_id, &settings.run_dir)?;
    let timeout = candidate_timeout(settings.timeout, profile, &baseline);
    let ref_dir = settings.run_dir.join(format!("{}.ref", profile.repo_name));
    let check_path = ref_dir.join("coverage_check.json");
    let (coverage, coverage_note) = match settings.choice.select {
        Selector::All => (None, "not used (--select all)".to_string()),
        Selector::Covering => match baseline_coverage(first.as_mut(), profile, env_id, &settings.run_dir) {
            Ok(coverage) => {
                let note = format!("{} tests recorded", coverage.tests.len());
                (Some(coverage), note)
            }
            Err(why) => (None, format!("{why}; whole suites run")),
        },
    };
    let coverage_key = std::fs::read_to_string(ref_dir.join("coverage.key")).unwrap_or_default();
    let mut check: CoverageCheck = std::fs::read_to_string(&check_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .filter(|c: &CoverageCheck| c.key == coverage_key)
        .unwrap_or_else(|| CoverageCheck { key: coverage_key.clone(), ..CoverageCheck::default() });
    let coverage = coverage.filter(|_| check.fallback.is_none());
    let mut summary = Summary {
        repo_name: profile.repo_name.clone(),
        backend: backend.name().to_string(),
        env: env_id.to_string(),
        baseline_tests: baseline.tests.len() + baseline.flaky.len(),
        baseline_passing: baseline.passing(),
        baseline_flaky: baseline.flaky.len(),
        timeout,
        coverage: coverage_note,
        fallback: check.fallback.clone(),
        ..Summary::default()
    };
    // Finished candidates (same key) are counted and skipped.
    let source = |path: &str| std::fs::read_to_string(checkout.root.join(path)).ok();
    let mut jobs = Vec::new();
    for candidate in candidates {
        let patch =
            std::fs::read_to_string(&candidate.path).map_err(|e| format!("{}: {e}", candidate.path.display()))?;
        let (plan, whole_suite_because) = match &coverage {
            None => (Plan::All, None),
            Some(coverage) => match coverage.select(&patch, source) {
                crate::coverage::Selection::Uncovered => (Plan::Uncovered, None),
                crate::coverage::Selection::Tests(tests) => (Plan::Covering(tests.into_iter().collect()), None),
                crate::coverage::Selection::All(why) => {
                    tracing::debug!(instance = %candidate.instance_id, "whole suite: {why}");
                    (Plan::All, Some(why))
                }
            },
        };
        let key = report_key(env_id, &patch, profile, &mode_of(&plan, settings, timeout), &baseline);
        let key_all = report_key(env_id, &patch, profile, &mode_of(&Plan::All, settings, timeout), &baseline);
        let report_path = settings.run_dir.join(&candidate.instance_id).join("report.json");
        let done = std::fs::read_to_string(&report_path).ok().and_then(|t| serde_json::from_str::<Report>(&t).ok());
        match done {
            // Infrastructure errors (a killed worker, an interrupted run) are tried again.
            Some(report) if report.key == key && !report.retried_on_resume() => {
                *summary
                    .strategies
                    .entry(candidate.strategy.clone())
                    .or_default()
                    .entry(report.verdict)
                    .or_default() += 1;
                if let Some(selection) = report.selection {
                    *summary.selection.entry(selection).or_default() += 1;
                }
                summary.skipped_done += 1;
            }
            _ => jobs.push(Job {
                candidate: candidate.clone(),
                patch,
                key,
                key_all,
                plan,
                whole_suite_because,
                verify: false,
            }),
        }
    }
    // The verify sample (chosen with the seed, at least one) runs first, so a disagreement
    // is known before the rest relies on the selection. It is drawn from the candidates the
    // selection decides (a whole-suite one has nothing to verify).
    let decided: Vec<usize> = (0..jobs.len()).filter(|&i| jobs[i].plan != Plan::All).collect();
    if coverage.is_some() && settings.choice.verify > 0.0 && !decided.is_empty() {
        let wanted = ((jobs.len() as f64 * settings.choice.verify / 100.0).round() as usize).clamp(1, decided.len());
        let mut order = decided;
        order.sort_by_key(|&i| hash8(&format!("{}\n{}", settings.choice.seed, jobs[i].candidate.instance_id)));
        for &i in order.iter().take(wanted) {
            jobs[i].verify = true;
        }
    }
    let (verify_jobs, rest): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.verify);
    progress.phase("validating", (verify_jobs.len() + rest.len()) as u64);
    let shared = Shared {
        backend,
        profile,
        checkout,
        baseline: &baseline,
        coverage: coverage.as_ref(),
        settings,
        timeout,
        progress,
        tally: Mutex::new(summary),
        check: Mutex::new(std::mem::take(&mut check)),
        fallback: std::sync::atomic::AtomicBool::new(false),
        failure: Mutex::new(None),
    };
    let mut first = Some(first);
    for pass in [verify_jobs, rest] {
        run_pass(&shared, pass, &mut first);
        let check = shared.check.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if !check.checked.is_empty() || check.fallback.is_some() {
            let json = serde_json::to_string_pretty(&check).unwrap_or_default();
            let _ = std::fs::create_dir_all(&ref_dir);
            write_atomic(&check_path, json.as_bytes()).map_err(crate::context::io(&check_path))?;
        }
    }
    if let Some(e) = shared.failure.into_inner().unwrap_or(None) {
        return Err(Error::Run(format!("cannot start a worker: {e}")));
    }
    let check = shared.check.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut summary = shared.tally.into_inner().map_err(|_| "lock".to_string())?;
    summary.verified = check.checked.len();
    summary.disagreements = check
        .checked
        .iter()
        .filter(|c| !c.agree)
        .map(|c| {
            format!(
                "{}: {:?} with the selection, {:?} with the full suite (F2P missed {:?}, extra {:?}, {} P2P differ)",
                c.instance_id, c.selected, c.full, c.missed_f2p, c.extra_f2p, c.p2p_differences
            )
        })
        .collect();
    summary.fallback = check.fallback;
    summary.seconds = started.elapsed().as_secs_f64();
    summary.per_minute = summary.ran as f64 * 60.0 / summary.seconds.max(1e-9);
    Ok(summary)
}

/// What a report key records of how the tests are chosen.
fn mode_of(plan: &Plan, settings: &Settings, timeout: u64) -> String {
    match plan {
        Plan::All => format!("all {timeout}"),
        Plan::Uncovered | Plan::Covering(_) => {
            format!("covering exact={} {:?}", settings.choice.exact, settings.timeout)
        }
    }
}

/// Runs one pass of jobs on `settings.jobs` workers (the first reuses `first`).
fn run_pass<'a>(shared: &Shared<'a>, jobs: Vec<Job>, first: &mut Option<Box<dyn Worker + 'a>>) {
    let queue = Mutex::new(VecDeque::from(jobs));
    let kept: Mutex<Option<Box<dyn Worker + 'a>>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for index in 0..shared.settings.jobs.max(1) {
            let worker = if index == 0 { first.take() } else { None };
            let (queue, kept) = (&queue, &kept);
            scope.spawn(move || {
                let mut worker = worker;
                let mut used = 0;
                while let Some(mut job) = pop(queue) {
                    if shared.settings.deadline.is_some_and(|d| Instant::now() >= d) {
                        shared.tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner).left += 1;
                        continue;
                    }
                    if shared.fallback.load(std::sync::atomic::Ordering::SeqCst) && job.plan != Plan::All {
                        job.plan = Plan::All;
                        job.key.clone_from(&job.key_all);
                        job.whole_suite_because = Some("the verify sample disagreed: whole suites for this run".into());
                    }
                    let plan = job.plan.clone();
                    if plan == Plan::Uncovered && !job.verify {
                        finish(shared, &job, &decided_without_run(shared, &job), &RunResult::default());
                        continue;
                    }
                    if worker.is_none() || used >= shared.settings.recycle_after {
                        drop(worker.take()); // the old one goes before a new one starts
                        match shared.backend.start_worker(shared.profile, shared.checkout, index) {
                            Ok(w) => worker = Some(w),
                            Err(e) => {
                                *shared.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                                    Some(e.to_string());
                                break;
                            }
                        }
                        used = 0;
                    }
                    let Some(active) = worker.as_mut() else { break };
                    let (report, result, replace) = validate_one(shared, active.as_mut(), &job, &plan);
                    used += 1;
                    if replace {
                        worker = None; // a fresh worker for the next candidate
                    }
                    finish(shared, &job, &report, &result);
                }
                if index == 0
                    && let Some(worker) = worker
                {
                    *kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(worker);
                }
            });
        }
    });
    *first = kept.into_inner().unwrap_or(None);
}

/// The report of a candidate no test executes: every test as in the baseline, so no F2P and
/// the baseline's passing tests as P2P.
fn decided_without_run(shared: &Shared<'_>, job: &Job) -> Report {
    let tests = merged_run(shared.baseline, &TestRun::default(), &[]);
    let result = RunResult { applied: true, finished: true, exit_code_agrees: true, tests, ..RunResult::default() };
    let mut report = report_for(&job.candidate, shared.baseline, &result, 0, shared.backend.name(), job.key.clone());
    report.exit_code = None;
    report.results_from = "coverage".into();
    report.selection = Some(SelectionUsed::Uncovered);
    report.tests_run = Some(0);
    report.p2p_from = Some(P2pFrom::Baseline);
    report
}

/// Runs one candidate as its plan says (and the full suite too for a verify job); returns
/// the report, the run whose output is kept, and whether the worker must be replaced.
fn validate_one(shared: &Shared<'_>, worker: &mut dyn Worker, job: &Job, plan: &Plan) -> (Report, RunResult, bool) {
    let (profile, baseline, name) = (shared.profile, shared.baseline, shared.backend.name());
    let full_timeout = Duration::from_secs(shared.timeout);
    let run_full = |worker: &mut dyn Worker| match refused_symlink(&job.patch) {
        Some(why) => RunResult { apply_failed: true, output: why, ..RunResult::default() },
        None => run_once(worker, profile, &job.patch, full_timeout),
    };
    let needs_new_worker = |r: &RunResult| r.broken.is_some() || r.timed_out || r.leaked > 0;
    let full_report = |result: &RunResult| {
        let mut report = report_for(&job.candidate, baseline, result, shared.timeout, name, job.key.clone());
        report.selection = Some(SelectionUsed::All);
        report.tests_run = Some(result.tests.tests.len());
        report.p2p_from = Some(P2pFrom::Run);
        report.whole_suite_because = job.whole_suite_because.clone();
        report
    };
    let (mut report, mut kept, mut replace) = match (plan, shared.coverage) {
        (Plan::Covering(tests), Some(coverage)) if refused_symlink(&job.patch).is_none() => {
            let node_ids: Vec<String> = tests.iter().map(|&i| coverage.tests[i].clone()).collect();
            let ids: Vec<&str> = tests.iter().map(|&i| coverage.ids[i].as_str()).collect();
            let timeout = selected_timeout(shared.settings.timeout, profile, baseline, &ids);
            let options = RunOptions { select: Some(node_ids), ..RunOptions::default() };
            let result = run_with(worker, profile, &job.patch, Duration::from_secs(timeout), &options);
            let whole_suite_because = if !result.applied || result.broken.is_some() || result.timed_out {
                None
            } else if !result.tests.collection_errors.is_empty() {
                // A test module no longer imports: the change breaks code that runs at import,
                // which every module importing it shares, selected or not.
                Some("a selected test module failed to import")
            } else if !ids.iter().any(|id| result.tests.tests.contains_key(*id)) {
                // The selection reached none of its tests (ids that do not match).
                Some("selected tests did not run")
            } else {
                None
            };
            if let Some(why) = whole_suite_because {
                tracing::info!(instance = %job.candidate.instance_id, "{why}; whole suite");
                let replace = needs_new_worker(&result);
                let full = run_full(worker);
                let report = Report { whole_suite_because: Some(why.into()), ..full_report(&full) };
                (report, full.clone(), replace || needs_new_worker(&full))
            } else {
                let merged = RunResult { tests: merged_run(baseline, &result.tests, &ids), ..result.clone() };
                let mut report = report_for(&job.candidate, baseline, &merged, timeout, name, job.key.clone());
                report.selection = Some(SelectionUsed::Covering);
                report.tests_run = Some(result.tests.tests.len());
                report.p2p_from = Some(P2pFrom::Baseline);
                let replace = needs_new_worker(&result);
                if shared.settings.choice.exact && !report.grade.fail_to_pass.is_empty() && !replace {
                    // P2P from a full second run.
                    let full = run_full(worker);
                    let mut exact = full_report(&full);
                    exact.selection = Some(SelectionUsed::Covering);
                    exact.tests_run = Some(result.tests.tests.len() + full.tests.tests.len());
                    (exact, full.clone(), needs_new_worker(&full))
                } else {
                    (report, merged, replace)
                }
            }
        }
        (Plan::Uncovered, _) => (decided_without_run(shared, job), RunResult::default(), false),
        _ => {
            let full = run_full(worker);
            (full_report(&full), full.clone(), needs_new_worker(&full))
        }
    };
    if job.verify && report.selection == Some(SelectionUsed::All) {
        // Its run was the full suite: nothing to compare, and it counts as checked.
        let mut check = shared.check.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        check.checked.push(CheckedCandidate {
            instance_id: job.candidate.instance_id.clone(),
            agree: true,
            selected: report.verdict,
            full: report.verdict,
            missed_f2p: Vec::new(),
            extra_f2p: Vec::new(),
            p2p_differences: 0,
        });
    } else if job.verify && !replace {
        let full = run_full(worker);
        replace = needs_new_worker(&full);
        let truth = full_report(&full);
        let missed: Vec<String> =
            truth.grade.fail_to_pass.iter().filter(|t| !report.grade.fail_to_pass.contains(t)).cloned().collect();
        let extra: Vec<String> =
            report.grade.fail_to_pass.iter().filter(|t| !truth.grade.fail_to_pass.contains(t)).cloned().collect();
        let p2p_differences = truth
            .grade
            .pass_to_pass
            .iter()
            .filter(|t| !report.grade.pass_to_pass.contains(t))
            .chain(report.grade.pass_to_pass.iter().filter(|t| !truth.grade.pass_to_pass.contains(t)))
            .count();
        let agree = missed.is_empty() && extra.is_empty() && truth.verdict == report.verdict;
        let mut check = shared.check.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !missed.is_empty() || !extra.is_empty() {
            let test = missed.first().or(extra.first()).cloned().unwrap_or_default();
            let message = format!(
                "{}: the full suite disagrees with the selection on {test}: whole suites for the rest of the run",
                job.candidate.instance_id
            );
            crate::console::warn(&message);
            check.fallback.get_or_insert(message);
            shared.fallback.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        check.checked.push(CheckedCandidate {
            instance_id: job.candidate.instance_id.clone(),
            agree,
            selected: report.verdict,
            full: truth.verdict,
            missed_f2p: missed,
            extra_f2p: extra,
            p2p_differences,
        });
        if !agree {
            // The full suite is the truth for this candidate.
            report = Report {
                key: job.key.clone(),
                whole_suite_because: Some("the verify sample disagreed with the selection".into()),
                ..truth
            };
            kept = full;
        }
    }
    (report, kept, replace)
}

/// The results of a selected run with every test it did not select as in the baseline (a
/// selected test that did not run stays absent, as in a full run).
fn merged_run(baseline: &Baseline, selected: &TestRun, ids: &[&str]) -> TestRun {
    let chosen: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    let mut merged = selected.clone();
    for (id, status) in &baseline.tests {
        if !chosen.contains(id.as_str()) && !merged.tests.contains_key(id) {
            merged.tests.insert(id.clone(), *status);
        }
    }
    merged
}

/// Records a finished candidate: its files, its counts, its progress.
fn finish(shared: &Shared<'_>, job: &Job, report: &Report, result: &RunResult) {
    tracing::debug!(
        instance = %job.candidate.instance_id,
        verdict = ?report.verdict,
        selection = ?report.selection,
        f2p = report.grade.fail_to_pass.len(),
        seconds = result.seconds,
        "validated"
    );
    if let Some(why) = &result.broken {
        tracing::info!(instance = %job.candidate.instance_id, "worker replaced: {why}");
    } else if result.leaked > 0 {
        tracing::info!(instance = %job.candidate.instance_id, "worker replaced: {} leaked processes", result.leaked);
    }
    let settings = shared.settings;
    if let Err(e) =
        write_candidate(&shared.profile.test_cmd, &settings.run_dir, &job.candidate, &job.patch, result, report)
    {
        shared.progress.problem(&Problem { location: job.candidate.instance_id.clone(), message: e.to_string() });
    }
    if let Ok(mut t) = shared.tally.lock() {
        *t.strategies.entry(job.candidate.strategy.clone()).or_default().entry(report.verdict).or_default() += 1;
        if let Some(selection) = report.selection {
            *t.selection.entry(selection).or_default() += 1;
        }
        t.tests_run += report.tests_run.unwrap_or(0);
        t.ran += 1;
        let valid = t.total(Verdict::Valid);
        shared.progress.note(&format!("{valid} valid of {} done", t.ran + t.skipped_done));
    }
    shared.progress.advance(1);
}

impl Report {
    /// Whether a resumed run tries this candidate again: only infrastructure errors (reports
    /// from before `error_kind` existed count as such).
    pub fn retried_on_resume(&self) -> bool {
        self.verdict == Verdict::Error && matches!(self.error_kind, None | Some(ErrorKind::Infrastructure))
    }
}

/// Writes a candidate's folder: the patch, the test output, a short log, then the report last.
fn write_candidate(
    test_cmd: &str,
    run_dir: &Path,
    candidate: &CandidateFile,
    patch: &str,
    result: &RunResult,
    report: &Report,
) -> Result<(), Error> {
    let dir = run_dir.join(&candidate.instance_id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log = format!(
        "instance {}\npatch applied: {}\nexit code: {:?} (agrees with results: {})\nresults from: {}\ntests ran {:.2} s (timeout {} s, timed out: {})\nverdict: {:?}\n{}",
        candidate.instance_id,
        result.applied,
        result.exit_code,
        result.exit_code_agrees,
        result.source,
        result.seconds,
        report.timeout,
        result.timed_out,
        report.verdict,
        result.broken.as_deref().map(|b| format!("worker: {b}\n")).unwrap_or_default()
    );
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    let write = |name: &str, bytes: &[u8]| write_atomic(&dir.join(name), bytes).map_err(|e| format!("{name}: {e}"));
    write("patch.diff", patch.as_bytes())?;
    write("test_output.txt", with_markers(&result.output).as_bytes())?;
    write("eval.sh", eval_script(test_cmd).as_bytes())?;
    write("run_instance.log", log.as_bytes())?;
    if let Some(junit) = &result.junit {
        write("junit.xml", junit.as_bytes())?;
    }
    Ok(write("report.json", json.as_bytes())?)
}

fn selection_name(selection: SelectionUsed) -> &'static str {
    match selection {
        SelectionUsed::Covering => "covering",
        SelectionUsed::Uncovered => "uncovered (no run)",
        SelectionUsed::All => "whole suite",
    }
}

/// The one-screen summary of a `validate` run.
pub fn print_validate_summary(summary: &Summary) {
    use crate::validate::Verdict;
    println!("repo        {} ({} backend, env {})", summary.repo_name, summary.backend, summary.env);
    println!(
        "baseline    {} tests, {} passing, {} flaky (left out); candidate timeout {} s",
        summary.baseline_tests, summary.baseline_passing, summary.baseline_flaky, summary.timeout
    );
    println!("coverage    {}", summary.coverage);
    if !summary.selection.is_empty() {
        let counts: Vec<String> =
            summary.selection.iter().map(|(s, n)| format!("{n} {}", selection_name(*s))).collect();
        println!("selection   {}; {} tests run in all", counts.join(", "), summary.tests_run);
    }
    if summary.verified > 0 {
        println!(
            "verified    {} candidates against the full suite: {} disagree",
            summary.verified,
            summary.disagreements.len()
        );
        for line in &summary.disagreements {
            println!("  {line}");
        }
    }
    if let Some(why) = &summary.fallback {
        println!("fallback    {why}");
    }
    if summary.left > 0 {
        println!("left        {} candidates not started: the time budget ran out", summary.left);
    }
    println!();
    let verdicts = [
        (Verdict::Valid, "valid"),
        (Verdict::NoPassToPass, "no P2P"),
        (Verdict::NoTestBroken, "no test broken"),
        (Verdict::Timeout, "timeout"),
        (Verdict::ApplyFailed, "apply failed"),
        (Verdict::Error, "error"),
    ];
    print!("{:<30}", "strategy");
    for (_, name) in &verdicts {
        print!(" {name:>14}");
    }
    println!();
    for (id, counts) in &summary.strategies {
        print!("{id:<30}");
        for (verdict, _) in &verdicts {
            print!(" {:>14}", counts.get(verdict).copied().unwrap_or(0));
        }
        println!();
    }
    println!();
    let total: usize = summary.strategies.values().flat_map(|c| c.values()).sum();
    println!(
        "{} valid of {} ({} run now, {} already done) in {:.1} s: {:.1} candidates/min",
        summary.total(Verdict::Valid),
        total,
        summary.ran,
        summary.skipped_done,
        summary.seconds,
        summary.per_minute
    );
}

/// The baseline and its per-test coverage, before any candidate exists (`run` with
/// `covered_only`, ahead of `gen`).
pub fn prepare_coverage(
    ctx: &Context,
    profile_path: &Path,
    settings: &ValidateSettings,
    out: &Path,
) -> Result<(), Error> {
    let profile = ctx.profile(profile_path)?;
    let checkout = ctx.checkout(&profile)?;
    let backend = ctx.backend(settings.backend, settings.containment.clone())?;
    let log_dir = out.join("build_images").join("env").join(&profile.repo_name);
    let env = backend.build_env(&profile, &checkout, &log_dir)?;
    let run_dir = out.join("run_validation").join(&profile.repo_name);
    let mut worker = backend.start_worker(&profile, &checkout, 0)?;
    baseline(worker.as_mut(), &profile, &env, &run_dir)?;
    baseline_coverage(worker.as_mut(), &profile, &env, &run_dir)
        .map_err(|e| Error::Usage(format!("covered_only: {e}")))?;
    Ok(())
}

/// `bugsmith validate`: every candidate of the profile's repository, against the clean
/// baseline, into `<out>/run_validation/<repo_name>/`.
pub fn command(ctx: &Context, profile_path: &Path, settings: &ValidateSettings, out: &Path, json: bool) -> Outcome {
    let profile = ctx.profile(profile_path)?;
    let checkout = ctx.checkout(&profile)?;
    let candidates_dir = settings.candidates.clone().unwrap_or_else(|| out.join("bug_gen").join(&profile.repo_name));
    let candidates = find_candidates(&candidates_dir, &profile.repo_name);
    if candidates.is_empty() {
        return Err(Error::Usage(format!(
            "no candidates (bug__*.diff) under {}: run `bugsmith gen {}` first",
            candidates_dir.display(),
            profile_path.display()
        )));
    }
    let backend = ctx.backend(settings.backend, settings.containment.clone())?;
    let log_dir = out.join("build_images").join("env").join(&profile.repo_name);
    console::status(json, &format!("preparing the {} environment …", backend.name()));
    let env = backend.build_env(&profile, &checkout, &log_dir)?;
    let run = Settings {
        jobs: settings.jobs,
        timeout: settings.timeout,
        recycle_after: settings.recycle_after,
        run_dir: out.join("run_validation").join(&profile.repo_name),
        choice: TestChoice {
            select: settings.select,
            exact: settings.exact,
            verify: settings.verify,
            seed: settings.seed,
        },
        deadline: settings.deadline,
    };
    let bar = console::Bar::new(json);
    console::status(json, "running the clean baseline …");
    let summary = validate(backend.as_ref(), &profile, &checkout, &env, &candidates, &run, &bar);
    bar.finish();
    crate::context::print_summary(json, &summary?, print_validate_summary);
    Ok(crate::EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_found_by_file_name_and_sorted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/bug__func_pm_op_swap__zz99aa11.diff"), "x").unwrap();
        std::fs::write(dir.path().join("a/bug__func_pm_remove_loop__aa11bb22.diff"), "y").unwrap();
        std::fs::write(dir.path().join("a/metadata__func_pm_remove_loop__aa11bb22.json"), "{}").unwrap();
        let found = find_candidates(dir.path(), "o__r.12345678");
        let ids: Vec<&str> = found.iter().map(|c| c.instance_id.as_str()).collect();
        assert_eq!(ids, ["o__r.12345678.func_pm_op_swap__zz99aa11", "o__r.12345678.func_pm_remove_loop__aa11bb22"]);
        assert_eq!(found[1].strategy, "func_pm_remove_loop");
    }
}
