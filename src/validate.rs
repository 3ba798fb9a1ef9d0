//! Validation: run each candidate's tests in a warm worker, compare with the clean baseline and
//! write SWE-smith's `run_validation/<repo_name>/<instance_id>/report.json`. Resumable: a report
//! whose key (environment, patch, test command) matches is not run again.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::backend::Backend;
use crate::console;
use crate::context::{Context, Error, Outcome};
use crate::files::write_atomic;
use crate::grading::{self, Baseline, Grade};
use crate::patch::hash8;
use crate::profile::Profile;
use crate::progress::{Problem, Progress};
pub use crate::records::{ErrorKind, OUTPUT_END, OUTPUT_START, Report, Verdict, with_markers, without_markers};
use crate::settings::ValidateSettings;
use crate::source::Checkout;
use crate::testrun::pop;
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
        key,
    }
}

/// The key of a candidate's report.
fn report_key(env_id: &str, patch: &str, profile: &Profile, timeout: u64, baseline: &Baseline) -> String {
    let baseline = serde_json::to_string(&baseline.tests).unwrap_or_default();
    hash8(&format!("{env_id}\n{}\n{timeout}\n{}\n{patch}", profile.test_setup(), hash8(&baseline)))
}

/// Validates candidates with `settings.jobs` workers; already finished ones are skipped.
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
    let mut summary = Summary {
        repo_name: profile.repo_name.clone(),
        backend: backend.name().to_string(),
        env: env_id.to_string(),
        baseline_tests: baseline.tests.len() + baseline.flaky.len(),
        baseline_passing: baseline.passing(),
        baseline_flaky: baseline.flaky.len(),
        timeout,
        ..Summary::default()
    };
    // Finished candidates (same key) are counted and skipped.
    let mut queue = VecDeque::new();
    for candidate in candidates {
        let patch =
            std::fs::read_to_string(&candidate.path).map_err(|e| format!("{}: {e}", candidate.path.display()))?;
        let key = report_key(env_id, &patch, profile, timeout, &baseline);
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
                summary.skipped_done += 1;
            }
            _ => queue.push_back((candidate.clone(), patch, key)),
        }
    }
    progress.phase("validating", queue.len() as u64);
    let queue = Mutex::new(queue);
    let tally = Mutex::new(summary);
    let jobs = settings.jobs.max(1);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|scope| {
        let mut first = Some(first);
        for index in 0..jobs {
            let worker = first.take();
            let (queue, tally, failure, baseline) = (&queue, &tally, &failure, &baseline);
            scope.spawn(move || {
                let mut worker = worker;
                let mut used = 0;
                while let Some((candidate, patch, key)) = pop(queue) {
                    if worker.is_none() || used >= settings.recycle_after {
                        drop(worker.take()); // the old one goes before a new one starts
                        match backend.start_worker(profile, checkout, index) {
                            Ok(w) => worker = Some(w),
                            Err(e) => {
                                *failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                                    Some(e.to_string());
                                break;
                            }
                        }
                        used = 0;
                    }
                    let Some(active) = worker.as_mut() else { break };
                    let result = match refused_symlink(&patch) {
                        Some(why) => RunResult { apply_failed: true, output: why, ..RunResult::default() },
                        None => run_once(active.as_mut(), profile, &patch, Duration::from_secs(timeout)),
                    };
                    used += 1;
                    if result.broken.is_some() || result.timed_out || result.leaked > 0 {
                        worker = None; // a fresh worker for the next candidate
                    }
                    let report = report_for(&candidate, baseline, &result, timeout, backend.name(), key);
                    tracing::debug!(
                        instance = %candidate.instance_id,
                        verdict = ?report.verdict,
                        f2p = report.grade.fail_to_pass.len(),
                        seconds = result.seconds,
                        "validated"
                    );
                    if let Some(why) = &result.broken {
                        tracing::info!(instance = %candidate.instance_id, "worker replaced: {why}");
                    } else if result.leaked > 0 {
                        tracing::info!(instance = %candidate.instance_id, "worker replaced: {} leaked processes", result.leaked);
                    }
                    if let Err(e) =
                        write_candidate(&profile.test_cmd, &settings.run_dir, &candidate, &patch, &result, &report)
                    {
                        progress.problem(&Problem { location: candidate.instance_id.clone(), message: e.to_string() });
                    }
                    if let Ok(mut t) = tally.lock() {
                        *t.strategies
                            .entry(candidate.strategy.clone())
                            .or_default()
                            .entry(report.verdict)
                            .or_default() += 1;
                        t.ran += 1;
                        let valid = t.total(Verdict::Valid);
                        progress.note(&format!("{valid} valid of {} done", t.ran + t.skipped_done));
                    }
                    progress.advance(1);
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or(None) {
        return Err(Error::Run(format!("cannot start a worker: {e}")));
    }
    let mut summary = tally.into_inner().map_err(|_| "lock".to_string())?;
    summary.seconds = started.elapsed().as_secs_f64();
    summary.per_minute = summary.ran as f64 * 60.0 / summary.seconds.max(1e-9);
    Ok(summary)
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

/// The one-screen summary of a `validate` run.
pub fn print_validate_summary(summary: &Summary) {
    use crate::validate::Verdict;
    println!("repo        {} ({} backend, env {})", summary.repo_name, summary.backend, summary.env);
    println!(
        "baseline    {} tests, {} passing, {} flaky (left out); candidate timeout {} s",
        summary.baseline_tests, summary.baseline_passing, summary.baseline_flaky, summary.timeout
    );
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
