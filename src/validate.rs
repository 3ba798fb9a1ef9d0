//! Validation: run each candidate's tests in a warm worker, compare with the clean baseline and
//! write SWE-smith's `run_validation/<repo_name>/<instance_id>/report.json`. Resumable: a report
//! whose key (environment, patch, test command) matches is not run again.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, Worker};
use crate::files::write_atomic;
use crate::progress::{Problem, Progress};
use crate::grading::{self, Baseline, Grade, TestRun};
use crate::patch::hash8;
use crate::profile::{LogParser, Profile};
use crate::source::Checkout;
use crate::console;
use crate::context::{Context, Error, Outcome};
use crate::settings::ValidateSettings;

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

/// What one run in a worker produced.
#[derive(Clone, Debug, Default)]
pub struct RunResult {
    /// The patch applied (always true for the baseline).
    pub applied: bool,
    /// The runner said `git apply` refused the patch.
    pub apply_failed: bool,
    /// Exit status of the test command (124 or 137: killed by the timeout).
    pub exit_code: Option<i64>,
    /// The test command hit its timeout.
    pub timed_out: bool,
    /// Seconds the tests ran.
    pub seconds: f64,
    /// Parsed results.
    pub tests: TestRun,
    /// Where the results came from: `junit`, `text` or `unittest text`.
    pub source: &'static str,
    /// Whether the exit status agrees with the results (0 ⇔ nothing failed).
    pub exit_code_agrees: bool,
    /// The worker needs replacing (work tree not reset, files outside it removed, hung).
    pub broken: Option<String>,
    /// The test process ended by this signal (exit status 128 + N).
    pub signal: Option<i64>,
    /// The memory cgroup killed a process during the tests.
    pub oom: bool,
    /// The results reached their end (a readable JUnit XML, or the runner's summary line).
    pub finished: bool,
    /// Processes the candidate left running, killed after it (the worker is replaced).
    pub leaked: usize,
    /// The test output (or the `git apply` output when the patch did not apply).
    pub output: String,
    /// The JUnit XML, when there was one.
    pub junit: Option<String>,
}

/// The variables the runner needs for one run in `worker` (see `backend/runner.sh`).
pub fn runner_env(worker: &dyn Worker, profile: &Profile, timeout: Duration) -> Vec<(String, String)> {
    let scratch = worker.scratch();
    let junit = format!("{scratch}/junit.xml");
    let mut env = vec![
        ("WORKDIR".to_string(), worker.workdir()),
        ("SCRATCH".to_string(), scratch),
        ("TEST_CMD".to_string(), profile.test_cmd.clone()),
        ("TEST_TIMEOUT".to_string(), timeout.as_secs().max(1).to_string()),
    ];
    env.extend(profile.test_env(&junit));
    env
}

/// Runs the tests once in a worker, with `patch` applied first (empty: the clean code).
pub fn run_once(worker: &mut dyn Worker, profile: &Profile, patch: &str, timeout: Duration) -> RunResult {
    let env = runner_env(worker, profile, timeout);
    let output = match worker.run_candidate(&[("patch.diff", patch)], env, timeout + Duration::from_secs(60)) {
        Ok(output) => output,
        Err(e) => return RunResult { broken: Some(e.to_string()), ..RunResult::default() },
    };
    if output.timed_out {
        return RunResult {
            timed_out: true,
            broken: Some("the worker did not answer after the test timeout".into()),
            output: output.output,
            ..RunResult::default()
        };
    }
    let mut result = parse_runner_output(&output.output, profile.log_parser);
    // 124/137 mean killed by `timeout` only when the time ran out (137 is also the OOM killer).
    result.timed_out = result.timed_out && result.seconds + 1.0 >= timeout.as_secs() as f64;
    result
}

/// Reads the marker lines the runner script prints.
pub fn parse_runner_output(text: &str, parser: LogParser) -> RunResult {
    let mut result = RunResult::default();
    let finished_runner = text.contains(">>>>> bugsmith output\n");
    let (head, tests_output) = text.split_once(">>>>> bugsmith output\n").unwrap_or((text, ""));
    let mut junit = None;
    for line in head.lines() {
        let Some(marker) = line.strip_prefix(">>>>> bugsmith ") else { continue };
        if marker == "applied" {
            result.applied = true;
        } else if marker == "apply failed" {
            result.apply_failed = true;
            result.output = head.split_once(">>>>> bugsmith apply failed\n").map_or("", |(_, rest)| rest).to_string();
            return result;
        } else if let Some(code) = marker.strip_prefix("exit ") {
            result.exit_code = code.trim().parse().ok();
        } else if let Some(millis) = marker.strip_prefix("millis ") {
            result.seconds = millis.trim().parse::<f64>().unwrap_or(0.0) / 1000.0;
        } else if let Some(data) = marker.strip_prefix("junit ") {
            junit = base64::engine::general_purpose::STANDARD.decode(data.trim()).ok();
        } else if let Some(reason) = marker.strip_prefix("broken ") {
            result.broken.get_or_insert_with(|| reason.to_string());
        } else if marker == "oom" {
            result.oom = true;
        } else if let Some(count) = marker.strip_prefix("leaked ") {
            result.leaked = count.trim().parse().unwrap_or(1);
        }
    }
    result.output = tests_output.to_string();
    if !result.applied && result.broken.is_none() {
        result.broken = Some(format!("the runner gave no result: {}", crate::backend::tail(text, 5)));
    }
    if !finished_runner && result.broken.is_none() {
        // Killed before it reset the work tree (a test signalled every process it could).
        result.broken = Some("the runner was killed before it finished".into());
    }
    // `timeout` exits 124 when the time ran out; above 128 the tests died by a signal.
    result.timed_out = result.exit_code == Some(124);
    result.signal = result.exit_code.filter(|c| *c > 128 && *c < 160).map(|c| c - 128);
    result.junit = junit.map(|xml| String::from_utf8_lossy(&xml).into_owned());
    let parsed_junit = result.junit.as_deref().and_then(|xml| grading::parse_junit(xml).ok());
    (result.tests, result.source, result.finished) = match (parser, parsed_junit) {
        (LogParser::Pytest, Some(run)) => (run, "junit", true),
        (LogParser::Pytest, None) => {
            (grading::parse_pytest_text(tests_output), "text", grading::pytest_finished(tests_output))
        }
        (LogParser::Unittest, _) => {
            (grading::parse_unittest_text(tests_output), "unittest text", grading::unittest_finished(tests_output))
        }
    };
    let failures = result.tests.count(grading::TestStatus::Failed)
        + result.tests.count(grading::TestStatus::Error)
        + result.tests.collection_errors.len();
    result.exit_code_agrees = (result.exit_code == Some(0)) == (failures == 0);
    result
}

impl RunResult {
    /// Why these results cannot be graded although the tests ran: killed for memory, by a
    /// signal, or ended before their results were complete.
    pub fn incomplete(&self) -> Option<(ErrorKind, String)> {
        if !self.applied || self.timed_out || self.broken.is_some() {
            return None;
        }
        if self.oom {
            return Some((ErrorKind::Oom, "the tests were killed by the memory limit".into()));
        }
        if let Some(signal) = self.signal {
            return Some((ErrorKind::Signal, format!("the tests ended by signal {signal}")));
        }
        if !self.finished {
            let what =
                if self.source == "text" { "no JUnit XML and no pytest summary line" } else { "no summary line" };
            return Some((
                ErrorKind::Incomplete,
                format!("incomplete results: {what} (exit status {:?})", self.exit_code),
            ));
        }
        None
    }
}

/// Why a candidate's verdict is `error`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Killed by the memory limit.
    Oom,
    /// Ended by a signal.
    Signal,
    /// The results stop before their end (the suite exited early).
    Incomplete,
    /// bugsmith's machinery (a worker that broke or did not answer); retried on resume.
    Infrastructure,
}

/// How one candidate ended.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// ≥ 1 F2P and ≥ 1 P2P: a task instance.
    Valid,
    /// F2P but no P2P (everything broke).
    NoPassToPass,
    /// No test broke.
    NoTestBroken,
    /// The tests timed out.
    Timeout,
    /// The patch did not apply.
    ApplyFailed,
    /// The machinery failed (see the report).
    Error,
}

/// `report.json`: SWE-smith's keys plus what we know more precisely.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// The instance id.
    pub instance_id: String,
    /// The lists, and why each F2P test failed.
    #[serde(flatten)]
    pub grade: Grade,
    /// SWE-smith's flag: present only when true (SWE-smith tests whether the key exists).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
    /// The timeout used, in seconds.
    pub timeout: u64,
    /// The outcome.
    pub verdict: Verdict,
    /// Whether the patch applied.
    pub patch_applied: bool,
    /// Exit status of the test command.
    pub exit_code: Option<i64>,
    /// Whether it agrees with the parsed results.
    pub exit_code_agrees: bool,
    /// `junit`, `text` or `unittest text`.
    pub results_from: String,
    /// Seconds the tests ran.
    pub test_seconds: f64,
    /// Backend that ran it.
    pub backend: String,
    /// What went wrong, for `error` (and the refusal, for a refused patch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the verdict is `error`; only `infrastructure` is tried again on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    /// Processes the candidate left running (killed after it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub leaked_processes: usize,
    /// Environment, patch and test command: a report with the same key is not redone.
    pub key: String,
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

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The baseline file, next to the reports (SWE-smith's `<repo_name>.ref` folder).
#[derive(Serialize, Deserialize)]
struct StoredBaseline {
    key: String,
    baseline: Baseline,
}

/// Runs (or reuses) the clean baseline; fails when it times out or no test passes.
pub fn baseline(
    worker: &mut dyn Worker,
    profile: &Profile,
    env_id: &str,
    settings: &Settings,
) -> Result<Baseline, String> {
    let ref_dir = settings.run_dir.join(format!("{}.ref", profile.repo_name));
    let key = hash8(&format!("baseline v2\n{env_id}\n{}\n{}", profile.test_setup(), profile.baseline_runs));
    let path = ref_dir.join("baseline.json");
    if let Some(stored) =
        std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str::<StoredBaseline>(&t).ok())
        && stored.key == key
    {
        return Ok(stored.baseline);
    }
    std::fs::create_dir_all(&ref_dir).map_err(|e| format!("{}: {e}", ref_dir.display()))?;
    let mut runs = Vec::new();
    let mut slowest: f64 = 0.0;
    let mut source = "";
    for i in 0..profile.baseline_runs.max(1) {
        let result = run_once(worker, profile, "", Duration::from_secs(profile.timeout_ref));
        let _ = write_atomic(&ref_dir.join("test_output.txt"), result.output.as_bytes());
        if result.timed_out {
            return Err(format!(
                "the clean test suite of {} timed out after {} s (run {}; timeout_ref in the profile); output: {}",
                profile.repo_name,
                profile.timeout_ref,
                i + 1,
                ref_dir.join("test_output.txt").display()
            ));
        }
        if let Some(reason) = result.broken {
            return Err(format!("the baseline run failed: {reason}"));
        }
        if let Some((_, why)) = result.incomplete() {
            return Err(format!(
                "the clean test suite of {} did not finish: {why}; output: {}",
                profile.repo_name,
                ref_dir.join("test_output.txt").display()
            ));
        }
        slowest = slowest.max(result.seconds);
        source = result.source;
        runs.push(result.tests);
    }
    let mut baseline = Baseline::from_runs(&runs, slowest);
    baseline.results_from = source.to_string();
    if baseline.passing() < 1 {
        let output = std::fs::read_to_string(ref_dir.join("test_output.txt")).unwrap_or_default();
        let hint = missing_dependency(&output).map_or_else(
            || "check test_cmd and install in the profile".to_string(),
            |(what, package)| {
                format!("the tests need {what}, which the environment lacks: add `python -m pip install {package}` to the profile's `install:` list")
            },
        );
        return Err(format!(
            "no test passes on the clean code of {} ({} results); {hint}; output: {}",
            profile.repo_name,
            runs.last().map_or(0, |r| r.tests.len()),
            ref_dir.join("test_output.txt").display()
        ));
    }
    let stored = StoredBaseline { key, baseline: baseline.clone() };
    let json = serde_json::to_string_pretty(&stored).map_err(|e| e.to_string())?;
    write_atomic(&path, json.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(baseline)
}

/// A module or pytest plugin the output says is missing: (what, the package to install).
pub fn missing_dependency(output: &str) -> Option<(String, String)> {
    if let Some(at) = output.find("No module named '") {
        let rest = &output[at + "No module named '".len()..];
        let module = rest.split('\'').next()?.split('.').next()?.to_string();
        return Some((format!("the module `{module}`"), module.replace('_', "-")));
    }
    // pytest options that only a plugin knows.
    const PLUGINS: [(&str, &str); 6] = [
        ("--cov", "pytest-cov"),
        ("-n", "pytest-xdist"),
        ("--numprocesses", "pytest-xdist"),
        ("--timeout", "pytest-timeout"),
        ("--benchmark", "pytest-benchmark"),
        ("--mypy", "pytest-mypy"),
    ];
    let line = output.lines().find(|l| l.contains("error: unrecognized arguments:"))?;
    let arguments = line.split("unrecognized arguments:").nth(1)?;
    arguments.split_whitespace().find_map(|argument| {
        PLUGINS
            .iter()
            .find(|(option, _)| {
                argument == *option
                    || argument.starts_with(&format!("{option}="))
                    || (option.len() > 2 && argument.starts_with(option))
            })
            .map(|(option, plugin)| (format!("the pytest plugin for `{option}`"), (*plugin).to_string()))
    })
}

/// The timeout for candidates: the setting, else the profile's, else `max(20, 5 × baseline)`.
pub fn candidate_timeout(settings: &Settings, profile: &Profile, baseline: &Baseline) -> u64 {
    settings.timeout.or(profile.timeout).unwrap_or_else(|| (5.0 * baseline.seconds).ceil().max(20.0) as u64)
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
) -> Result<Summary, String> {
    let started = Instant::now();
    let mut first = backend.start_worker(profile, checkout, 0).map_err(|e| e.to_string())?;
    let baseline = baseline(first.as_mut(), profile, env_id, settings)?;
    let timeout = candidate_timeout(settings, profile, &baseline);
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
                        progress.problem(&Problem { location: candidate.instance_id.clone(), message: e });
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
        return Err(format!("cannot start a worker: {e}"));
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

/// Why a patch is refused before it runs: it makes a symlink that points outside the work tree.
pub fn refused_symlink(patch: &str) -> Option<String> {
    let mut path: Option<&str> = None;
    let mut link = false;
    for line in patch.lines() {
        if let Some(header) = line.strip_prefix("diff --git ") {
            path = header.rsplit_once(" b/").map(|(_, p)| p);
            link = false;
        } else if line.starts_with("new file mode 120000") || line.starts_with("new mode 120000") {
            link = true;
        } else if link && let Some(target) = line.strip_prefix('+').filter(|t| !t.starts_with("++")) {
            let at = path.unwrap_or("");
            if leaves_tree(at, target) {
                return Some(format!("refused: the patch makes {at} a symlink to {target}, outside the work tree"));
            }
        }
    }
    None
}

/// Whether `target`, as a symlink at `at` (relative to the root), resolves outside the root.
fn leaves_tree(at: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return true;
    }
    let mut depth: i64 = at.split('/').count() as i64 - 1;
    for part in target.split('/') {
        match part {
            ".." => depth -= 1,
            "." | "" => {}
            _ => depth += 1,
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

/// The next queued item; the lock is released before the item is worked on.
pub(crate) fn pop<T>(queue: &Mutex<VecDeque<T>>) -> Option<T> {
    queue.lock().ok()?.pop_front()
}

/// SWE-smith's markers around the test output, as `set -x` prints them in its `eval.sh`.
pub const OUTPUT_START: &str = "+ : '>>>>> Start Test Output'";
/// See [`OUTPUT_START`].
pub const OUTPUT_END: &str = "+ : '>>>>> End Test Output'";

/// Test output between SWE-smith's markers, so its `read_test_output` finds it.
pub fn with_markers(output: &str) -> String {
    let newline = if output.is_empty() || output.ends_with('\n') { "" } else { "\n" };
    format!("{OUTPUT_START}\n{output}{newline}{OUTPUT_END}\n")
}

/// The test output without SWE-smith's markers.
pub fn without_markers(text: &str) -> &str {
    let body = text.strip_prefix(OUTPUT_START).map_or(text, |t| t.strip_prefix('\n').unwrap_or(t));
    body.strip_suffix(&format!("{OUTPUT_END}\n")).unwrap_or(body)
}

/// An `eval.sh` in SWE-smith's shape: what runs the tests in the image's `/testbed`.
pub fn eval_script(test_cmd: &str) -> String {
    format!(
        "#!/bin/bash\nset -uxo pipefail\ncd /testbed\n: '>>>>> Start Test Output'\n{test_cmd}\n: '>>>>> End Test Output'\n"
    )
}

/// Writes a candidate's folder: the patch, the test output, a short log, then the report last.
fn write_candidate(
    test_cmd: &str,
    run_dir: &Path,
    candidate: &CandidateFile,
    patch: &str,
    result: &RunResult,
    report: &Report,
) -> Result<(), String> {
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
    write("report.json", json.as_bytes())
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
    fn runner_output_is_read_from_its_markers() {
        let xml = base64::engine::general_purpose::STANDARD.encode(
            r#"<testsuites><testsuite><testcase classname="t" name="test_a" file="t.py"/><testcase classname="t" name="test_b" file="t.py"><failure/></testcase></testsuite></testsuites>"#,
        );
        let text = format!(
            ">>>>> bugsmith applied\n>>>>> bugsmith exit 1\n>>>>> bugsmith millis 1500\n>>>>> bugsmith junit {xml}\n>>>>> bugsmith output\nt.py::test_a PASSED\n>>>>> bugsmith exit 0\n"
        );
        let result = parse_runner_output(&text, LogParser::Pytest);
        assert!(result.applied && !result.timed_out && result.exit_code_agrees);
        assert_eq!((result.exit_code, result.seconds, result.source), (Some(1), 1.5, "junit"));
        assert_eq!(result.tests.tests.len(), 2);
        assert!(result.output.contains(">>>>> bugsmith exit 0"), "test output after the marker is data, not markers");
        let failed = parse_runner_output(
            ">>>>> bugsmith apply failed\nerror: patch failed\n>>>>> bugsmith output\n",
            LogParser::Pytest,
        );
        assert!(!failed.applied);
        assert!(failed.output.contains("patch failed"));
        let killed = parse_runner_output(
            ">>>>> bugsmith applied\n>>>>> bugsmith exit 124\n>>>>> bugsmith output\n",
            LogParser::Pytest,
        );
        assert!(killed.timed_out);
    }

    #[test]
    fn runs_that_ended_early_are_errors_with_their_reason() {
        let ended = |markers: &str, output: &str| {
            let text = format!(">>>>> bugsmith applied\n{markers}>>>>> bugsmith output\n{output}");
            parse_runner_output(&text, LogParser::Pytest).incomplete().map(|(kind, _)| kind)
        };
        let summary = "t.py::a PASSED\n==== 1 passed in 0.01s ====\n";
        assert_eq!(ended(">>>>> bugsmith exit 0\n", summary), None);
        assert_eq!(ended(">>>>> bugsmith exit 0\n", "t.py::a PASSED\n"), Some(ErrorKind::Incomplete), "os._exit(0)");
        assert_eq!(ended(">>>>> bugsmith exit 137\n>>>>> bugsmith oom\n", summary), Some(ErrorKind::Oom));
        assert_eq!(ended(">>>>> bugsmith exit 139\n", summary), Some(ErrorKind::Signal));
        assert_eq!(ended(">>>>> bugsmith exit 124\n", ""), None, "a timeout has its own verdict");
    }

    #[test]
    fn a_missing_module_or_plugin_is_named_with_what_to_install() {
        let warnings = "ERROR: while parsing the following warning configuration:\n  ignore::coverage.exceptions.CoverageWarning\nModuleNotFoundError: No module named 'coverage'\n";
        assert_eq!(missing_dependency(warnings), Some(("the module `coverage`".into(), "coverage".into())));
        let plugin =
            "ERROR: usage: pytest [options]\npytest: error: unrecognized arguments: --cov=pkg --cov-report=term\n";
        assert_eq!(missing_dependency(plugin).map(|(_, p)| p), Some("pytest-cov".into()));
        assert_eq!(missing_dependency("1 failed in 0.1s"), None);
    }

    #[test]
    fn patches_making_symlinks_out_of_the_tree_are_refused() {
        let link = |path: &str, target: &str| {
            format!(
                "diff --git a/{path} b/{path}\nnew file mode 120000\nindex 0000000..1111111\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+{target}\n\\ No newline at end of file\n"
            )
        };
        assert!(refused_symlink(&link("src/x.py", "/etc/passwd")).is_some());
        assert!(refused_symlink(&link("src/x.py", "../../outside")).is_some());
        assert_eq!(refused_symlink(&link("src/x.py", "../pkg/y.py")), None);
        assert_eq!(
            refused_symlink("diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x\n+/etc/passwd\n"),
            None
        );
    }

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
