//! Evaluation: scores predictions (patches) on task instances the way SWE-bench does, in the
//! same warm workers as validation. Per instance: the buggy state with the F2P tests present,
//! the prediction applied with SWE-bench's three apply commands, the F2P/P2P test files reset
//! to the instance's version, the suite run, and F2P/P2P graded (a missing test fails).
//! Reports use SWE-bench's keys (and its run summary, plus SWE-smith's), so their tools read them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, Worker};
use crate::context::{Context, Error, Outcome, io};
use crate::files::write_atomic;
use crate::grading::{TestRun, TestStatus};
use crate::patch::hash8;
use crate::profile::Profile;
use crate::progress::{Problem, Progress};
use crate::records::TaskInstance;
use crate::settings::RunnerSettings;
use crate::source::Checkout;
use crate::testrun;

pub mod serve;

/// A model's patch for one instance, in SWE-bench's prediction format.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Prediction {
    /// The instance.
    pub instance_id: String,
    /// The patch (`None`: the model gave none).
    #[serde(default)]
    pub model_patch: Option<String>,
    /// The model; the folder name under the run (`/` as `__`).
    #[serde(default = "unknown_model")]
    pub model_name_or_path: String,
}

fn unknown_model() -> String {
    "unknown".into()
}

impl Prediction {
    /// The folder name of the model: `/` written as `__`, as SWE-bench does.
    pub fn model_dir(&self) -> String {
        self.model_name_or_path.replace('/', "__")
    }
}

/// Reads predictions: a JSON list, a JSON object keyed by instance id, or JSON Lines.
pub fn read_predictions(path: &Path) -> Result<Vec<Prediction>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let where_ = |line: usize, e: serde_json::Error| format!("{}:{line}: {e}", path.display());
    if path.extension().is_some_and(|e| e == "jsonl") {
        return text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| Error::Usage(where_(i + 1, e))))
            .collect();
    }
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| where_(e.line(), e))?;
    let items: Vec<serde_json::Value> = match value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(map) => map.into_values().collect(),
        _ => return Err(Error::Usage(format!("{}: expected a list or an object of predictions", path.display()))),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            serde_json::from_value(item)
                .map_err(|e| Error::Usage(format!("{}: prediction {}: {e}", path.display(), i + 1)))
        })
        .collect()
}

/// The reference solutions: the reverse of each bug.
pub fn gold(instances: &[TaskInstance]) -> Vec<Prediction> {
    instances
        .iter()
        .map(|i| Prediction {
            instance_id: i.instance_id.clone(),
            model_patch: Some(crate::patch::reverse(&i.patch)),
            model_name_or_path: "gold".into(),
        })
        .collect()
}

/// Tests that passed and failed, for one of SWE-bench's four lists.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Outcomes {
    /// Tests that passed.
    pub success: Vec<String>,
    /// Tests that failed, erred or did not run.
    pub failure: Vec<String>,
}

/// SWE-bench's `tests_status`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[allow(non_snake_case)]
pub struct TestsStatus {
    /// The tests the bug breaks: must pass after the fix.
    pub FAIL_TO_PASS: Outcomes,
    /// The tests that pass with and without the bug: must still pass.
    pub PASS_TO_PASS: Outcomes,
    /// Always empty (bugsmith instances have none).
    pub FAIL_TO_FAIL: Outcomes,
    /// Always empty (bugsmith instances have none).
    pub PASS_TO_FAIL: Outcomes,
}

/// One instance's evaluation, as SWE-bench writes it (and a few fields of ours).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[allow(non_snake_case)]
pub struct InstanceReport {
    /// The prediction had no patch at all.
    pub patch_is_None: bool,
    /// The prediction had a non-empty patch.
    pub patch_exists: bool,
    /// One of the three apply commands took it.
    pub patch_successfully_applied: bool,
    /// Every F2P and P2P test passed.
    pub resolved: bool,
    /// Per test.
    pub tests_status: TestsStatus,
    /// `RESOLVED_FULL`, `RESOLVED_PARTIAL` or `RESOLVED_NO` (SWE-bench's resolution status).
    pub resolution: String,
    /// The model.
    pub model_name_or_path: String,
    /// Seconds the tests ran.
    pub test_seconds: f64,
    /// Why the instance could not be evaluated (the worker broke, the tests timed out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Environment, instance, prediction and test setup: a report with this key is not redone.
    pub key: String,
}

/// SWE-bench's success test: passed (or an expected failure).
fn passed(run: &TestRun, id: &str) -> bool {
    matches!(run.tests.get(id), Some(TestStatus::Passed | TestStatus::Xfail))
}

/// SWE-bench's failure test: failed, erred, or absent.
fn failed(run: &TestRun, id: &str) -> bool {
    matches!(run.tests.get(id), None | Some(TestStatus::Failed | TestStatus::Error))
}

/// Grades a run against an instance's lists as SWE-bench does: a skipped test is neither
/// success nor failure; resolved means every F2P and P2P test that counts passed.
pub fn grade(instance: &TaskInstance, run: &TestRun) -> (TestsStatus, &'static str) {
    let split = |ids: &[String]| Outcomes {
        success: ids.iter().filter(|id| passed(run, id)).cloned().collect(),
        failure: ids.iter().filter(|id| !passed(run, id) && failed(run, id)).cloned().collect(),
    };
    let status = TestsStatus {
        FAIL_TO_PASS: split(&instance.fail_to_pass),
        PASS_TO_PASS: split(&instance.pass_to_pass),
        ..TestsStatus::default()
    };
    let rate = |o: &Outcomes| {
        let total = o.success.len() + o.failure.len();
        if total == 0 { 1.0 } else { o.success.len() as f64 / total as f64 }
    };
    let (f2p, p2p) = (rate(&status.FAIL_TO_PASS), rate(&status.PASS_TO_PASS));
    let resolution = if f2p == 1.0 && p2p == 1.0 {
        "RESOLVED_FULL"
    } else if f2p > 0.0 && f2p < 1.0 && p2p == 1.0 {
        "RESOLVED_PARTIAL"
    } else {
        "RESOLVED_NO"
    };
    (status, resolution)
}

/// The files of an instance's F2P and P2P tests (relative paths inside the repository).
pub fn test_files(instance: &TaskInstance) -> Vec<String> {
    let files: BTreeSet<String> = instance
        .fail_to_pass
        .iter()
        .chain(&instance.pass_to_pass)
        .filter_map(|id| crate::grading::test_location(id).map(|(file, _)| file))
        .filter(|f| !f.starts_with('/') && !f.split('/').any(|p| p == ".." || p.is_empty()))
        .collect();
    files.into_iter().collect()
}

/// What one evaluation produced besides its report.
pub struct Evaluated {
    /// The report.
    pub report: InstanceReport,
    /// The test output (or why the patch did not apply).
    pub output: String,
}

/// Evaluates one prediction in a warm worker; a worker that broke or hung shows as the report's
/// `error`. Returns the evaluation and whether the worker must be replaced.
pub fn evaluate_one(
    worker: &mut dyn Worker,
    profile: &Profile,
    instance: &TaskInstance,
    prediction: &Prediction,
    timeout: Duration,
    key: String,
) -> (Evaluated, bool) {
    let patch = prediction.model_patch.as_deref().unwrap_or("");
    let mut report = InstanceReport {
        patch_is_None: prediction.model_patch.is_none(),
        patch_exists: !patch.trim().is_empty(),
        model_name_or_path: prediction.model_name_or_path.clone(),
        resolution: "RESOLVED_NO".into(),
        key,
        ..InstanceReport::default()
    };
    if let Some(why) = testrun::refused_symlink(patch) {
        report.error = Some(why);
        return (Evaluated { report, output: String::new() }, false);
    }
    let mut env = testrun::runner_env(worker, profile, timeout);
    env.push(("EVAL".to_string(), "1".to_string()));
    env.push(("TEST_FILES".to_string(), test_files(instance).join("\n")));
    let files = [("patch.diff", instance.patch.as_str()), ("prediction.diff", patch)];
    let output = match worker.run_candidate(&files, env, timeout + Duration::from_secs(60)) {
        Ok(output) if !output.timed_out => output,
        Ok(output) => {
            report.error = Some("the worker did not answer after the test timeout".into());
            return (Evaluated { report, output: output.output }, true);
        }
        Err(e) => {
            report.error = Some(e.to_string());
            return (Evaluated { report, output: String::new() }, true);
        }
    };
    let text = output.output;
    let apply_failure = text
        .lines()
        .find_map(|l| l.strip_prefix(">>>>> bugsmith prediction failed "))
        .map(|data| base64::engine::general_purpose::STANDARD.decode(data.trim()).unwrap_or_default());
    if let Some(why) = apply_failure {
        // SWE-bench: the patch does not apply; the instance is not resolved.
        let broken = text.contains(">>>>> bugsmith broken ");
        return (Evaluated { report, output: String::from_utf8_lossy(&why).into_owned() }, broken);
    }
    report.patch_successfully_applied = report.patch_exists;
    let result = testrun::parse_runner_output(&text, profile.log_parser);
    let broken = result.broken.is_some();
    if result.apply_failed {
        report.error =
            Some(format!("the instance's bug patch does not apply: {}", crate::backend::tail(&result.output, 5)));
    } else if result.timed_out && result.seconds + 1.0 >= timeout.as_secs() as f64 {
        report.error = Some(format!("the tests timed out after {} s", timeout.as_secs()));
    } else if let Some(why) = &result.broken
        && !result.applied
    {
        report.error = Some(why.clone());
    } else if let Some((_, why)) = result.incomplete().filter(|_| result.broken.is_none()) {
        report.error = Some(why);
    } else {
        let (status, resolution) = grade(instance, &result.tests);
        report.resolved = resolution == "RESOLVED_FULL";
        report.resolution = resolution.into();
        report.tests_status = status;
    }
    report.test_seconds = result.seconds;
    (Evaluated { report, output: result.output }, broken || result.timed_out || result.leaked > 0)
}

/// Settings of an evaluation run.
pub struct Settings {
    /// `<out>/run_evaluation/<run_id>`.
    pub run_dir: PathBuf,
    /// `<out>`, where baselines are kept (`run_validation/<repo_name>/<repo_name>.ref`).
    pub out: PathBuf,
    /// Workers per repository.
    pub jobs: usize,
    /// Evaluate again even where a report with the same key exists.
    pub redo: bool,
}

/// A repository's part of a run: its profile, checkout and environment.
pub struct Repository {
    /// The profile.
    pub profile: Profile,
    /// Its checkout.
    pub checkout: Checkout,
    /// The environment's id (from `Backend::build_env`).
    pub env_id: String,
}

/// The run summary: SWE-bench's keys and SWE-smith's.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunSummary {
    /// Instances in the dataset (after `--instance-ids`).
    pub total_instances: usize,
    /// Instances with a prediction.
    pub submitted_instances: usize,
    /// Instances evaluated to the end (empty patches and errors excluded).
    pub completed_instances: usize,
    /// Resolved instances.
    pub resolved_instances: usize,
    /// Completed but not resolved.
    pub unresolved_instances: usize,
    /// Predictions without a patch.
    pub empty_patch_instances: usize,
    /// Instances that could not be evaluated.
    pub error_instances: usize,
    /// Their ids.
    pub resolved_ids: Vec<String>,
    /// Their ids.
    pub unresolved_ids: Vec<String>,
    /// Their ids.
    pub empty_patch_ids: Vec<String>,
    /// Their ids.
    pub error_ids: Vec<String>,
    /// SWE-smith: resolved count.
    pub resolved: usize,
    /// SWE-smith: unresolved count (everything submitted that did not resolve).
    pub unresolved: usize,
    /// SWE-smith: predictions evaluated.
    pub total: usize,
    /// SWE-smith: resolved ids.
    pub ids_resolved: Vec<String>,
    /// SWE-smith: unresolved ids.
    pub ids_unresolved: Vec<String>,
    /// Reports reused from an earlier run.
    pub reused: usize,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Instances evaluated per minute (evaluated now).
    pub per_minute: f64,
}

/// The key of an evaluation: what shapes its result.
pub fn report_key(
    env_id: &str,
    profile: &Profile,
    instance: &TaskInstance,
    prediction: &Prediction,
    timeout: u64,
) -> String {
    hash8(&format!(
        "eval v1\n{env_id}\n{}\n{timeout}\n{}\n{}\n{:?}\n{:?}\n{}",
        profile.test_setup(),
        instance.patch,
        prediction.model_patch.as_deref().unwrap_or(""),
        instance.fail_to_pass,
        instance.pass_to_pass,
        prediction.model_patch.is_none()
    ))
}

/// The candidate timeout of a repository, from its stored (or newly run) baseline.
pub fn timeout_for(worker: &mut dyn Worker, repository: &Repository, out: &Path) -> Result<u64, Error> {
    let run_dir = out.join("run_validation").join(&repository.profile.repo_name);
    let baseline = testrun::baseline(worker, &repository.profile, &repository.env_id, &run_dir)?;
    Ok(testrun::candidate_timeout(None, &repository.profile, &baseline))
}

/// Writes an instance's folder: the prediction, the output, `eval.sh`, a log, then the report.
pub fn write_instance(
    dir: &Path,
    instance_id: &str,
    profile: &Profile,
    prediction: &Prediction,
    done: &Evaluated,
) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        write_atomic(&dir.join(name), bytes).map_err(|e| format!("{}: {e}", dir.join(name).display()))
    };
    write("patch.diff", prediction.model_patch.as_deref().unwrap_or("").as_bytes())?;
    write("test_output.txt", crate::records::with_markers(&done.output).as_bytes())?;
    write("eval.sh", testrun::eval_script(&profile.test_cmd).as_bytes())?;
    let r = &done.report;
    let log = format!(
        "instance {instance_id}\nmodel {}\npatch applied: {}\nresolved: {} ({})\ntests ran {:.2} s\n{}",
        r.model_name_or_path,
        r.patch_successfully_applied,
        r.resolved,
        r.resolution,
        r.test_seconds,
        r.error.as_deref().map(|e| format!("error: {e}\n")).unwrap_or_default()
    );
    write("run_instance.log", log.as_bytes())?;
    let json = serde_json::to_string_pretty(&BTreeMap::from([(instance_id, r)])).map_err(|e| e.to_string())?;
    Ok(write("report.json", json.as_bytes())?)
}

/// Reads an instance's report back (`None` when absent or unreadable).
pub fn read_report(dir: &Path, instance_id: &str) -> Option<InstanceReport> {
    let text = std::fs::read_to_string(dir.join("report.json")).ok()?;
    serde_json::from_str::<BTreeMap<String, InstanceReport>>(&text).ok()?.remove(instance_id)
}

/// One unit of work: an instance, its prediction, where its report goes.
struct Job<'a> {
    instance: &'a TaskInstance,
    prediction: &'a Prediction,
    dir: PathBuf,
}

/// Evaluates `predictions` on `instances` of one repository with `settings.jobs` workers.
/// Finished reports with the same key are kept (unless `redo`). Returns the reports by id.
pub fn evaluate_repository(
    backend: &dyn Backend,
    repository: &Repository,
    work: &[(&TaskInstance, &Prediction)],
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<(BTreeMap<String, InstanceReport>, usize), Error> {
    let profile = &repository.profile;
    let mut first = backend.start_worker(profile, &repository.checkout, 0).map_err(|e| e.to_string())?;
    let timeout = timeout_for(first.as_mut(), repository, &settings.out)?;
    let mut reports = BTreeMap::new();
    let mut queue = VecDeque::new();
    let mut reused = 0;
    for (instance, prediction) in work {
        let dir = settings.run_dir.join(prediction.model_dir()).join(&instance.instance_id);
        let key = report_key(&repository.env_id, profile, instance, prediction, timeout);
        match read_report(&dir, &instance.instance_id) {
            Some(done) if !settings.redo && done.key == key && done.error.is_none() => {
                reports.insert(instance.instance_id.clone(), done);
                reused += 1;
            }
            _ => queue.push_back((Job { instance, prediction, dir }, key)),
        }
    }
    progress.phase("evaluating", queue.len() as u64);
    let queue = Mutex::new(queue);
    let results = Mutex::new(reports);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|scope| {
        let mut first = Some(first);
        for index in 0..settings.jobs.max(1) {
            let worker = first.take();
            let (queue, results, failure) = (&queue, &results, &failure);
            scope.spawn(move || {
                let mut worker = worker;
                while let Some((job, key)) = testrun::pop(queue) {
                    if worker.is_none() {
                        match backend.start_worker(profile, &repository.checkout, index) {
                            Ok(w) => worker = Some(w),
                            Err(e) => {
                                *failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                                    Some(e.to_string());
                                break;
                            }
                        }
                    }
                    let Some(active) = worker.as_mut() else { break };
                    let (done, replace) = evaluate_one(
                        active.as_mut(),
                        profile,
                        job.instance,
                        job.prediction,
                        Duration::from_secs(timeout),
                        key,
                    );
                    if replace {
                        worker = None;
                    }
                    if let Err(e) = write_instance(&job.dir, &job.instance.instance_id, profile, job.prediction, &done)
                    {
                        progress
                            .problem(&Problem { location: job.instance.instance_id.clone(), message: e.to_string() });
                    }
                    if let Ok(mut r) = results.lock() {
                        r.insert(job.instance.instance_id.clone(), done.report);
                        let resolved = r.values().filter(|r| r.resolved).count();
                        progress.note(&format!("{resolved} resolved of {}", r.len()));
                    }
                    progress.advance(1);
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or(None) {
        return Err(Error::Run(format!("cannot start a worker: {e}")));
    }
    Ok((results.into_inner().map_err(|_| "lock".to_string())?, reused))
}

/// The run summary from the dataset, the predictions and the reports.
pub fn summarize(
    instances: &[TaskInstance],
    predictions: &[Prediction],
    reports: &BTreeMap<String, InstanceReport>,
) -> RunSummary {
    let mut summary = RunSummary { total_instances: instances.len(), ..RunSummary::default() };
    let known: BTreeSet<&str> = instances.iter().map(|i| i.instance_id.as_str()).collect();
    for prediction in predictions.iter().filter(|p| known.contains(p.instance_id.as_str())) {
        let id = prediction.instance_id.clone();
        summary.submitted_instances += 1;
        summary.total += 1;
        if prediction.model_patch.as_deref().is_none_or(|p| p.trim().is_empty()) {
            summary.empty_patch_ids.push(id.clone());
            summary.ids_unresolved.push(id);
            continue;
        }
        match reports.get(&id) {
            Some(r) if r.error.is_none() => {
                summary.completed_instances += 1;
                if r.resolved {
                    summary.resolved_ids.push(id.clone());
                    summary.ids_resolved.push(id);
                } else {
                    summary.unresolved_ids.push(id.clone());
                    summary.ids_unresolved.push(id);
                }
            }
            _ => {
                summary.error_ids.push(id.clone());
                summary.ids_unresolved.push(id);
            }
        }
    }
    summary.resolved_instances = summary.resolved_ids.len();
    summary.unresolved_instances = summary.unresolved_ids.len();
    summary.empty_patch_instances = summary.empty_patch_ids.len();
    summary.error_instances = summary.error_ids.len();
    summary.resolved = summary.ids_resolved.len();
    summary.unresolved = summary.ids_unresolved.len();
    summary
}

/// What an evaluation is asked for.
#[derive(Clone, Debug)]
pub struct EvalRequest {
    /// Task instances (`.json` or `.jsonl`).
    pub instances: PathBuf,
    /// A predictions file, or `gold`.
    pub predictions: String,
    /// Profiles given with `--profile`.
    pub profiles: Vec<PathBuf>,
    /// Name of the run.
    pub run_id: String,
    /// Only these instances (empty: all).
    pub instance_ids: Vec<String>,
    /// Evaluate again where a report exists.
    pub redo: bool,
}

/// `bugsmith eval`: predictions graded the way SWE-bench grades them, into
/// `<out>/run_evaluation/<run_id>/`.
pub fn command(ctx: &Context, request: &EvalRequest, runner: &RunnerSettings, out: &Path, json: bool) -> Outcome {
    let started = std::time::Instant::now();
    let mut instances = crate::records::read_instances(&request.instances)?;
    if !request.instance_ids.is_empty() {
        instances.retain(|i| request.instance_ids.contains(&i.instance_id));
    }
    let predictions = if request.predictions == "gold" {
        gold(&instances)
    } else {
        read_predictions(Path::new(&request.predictions))?
    };
    let (profiles, mut problems) = crate::context::find_profiles(&request.profiles, out, &request.instances);
    let backend = ctx.backend(runner.backend, runner.containment.clone())?;
    let (repositories, setup_problems) = prepare_repositories(ctx, backend.as_ref(), &instances, profiles, out, json);
    problems.extend(setup_problems);
    let by_id: BTreeMap<&str, &Prediction> = predictions.iter().map(|p| (p.instance_id.as_str(), p)).collect();
    let settings = Settings {
        run_dir: out.join("run_evaluation").join(&request.run_id),
        out: out.to_path_buf(),
        jobs: runner.jobs,
        redo: request.redo,
    };
    let mut reports = BTreeMap::new();
    let mut reused = 0;
    let bar = crate::console::Bar::new(json);
    for (name, repository) in &repositories {
        let work: Vec<(&TaskInstance, &Prediction)> = instances
            .iter()
            .filter(|i| i.repo_name() == name)
            .filter_map(|i| by_id.get(i.instance_id.as_str()).map(|p| (i, *p)))
            .filter(|(_, p)| p.model_patch.as_deref().is_some_and(|t| !t.trim().is_empty()))
            .collect();
        match evaluate_repository(backend.as_ref(), repository, &work, &settings, &bar) {
            Ok((done, skipped)) => {
                reports.extend(done);
                reused += skipped;
            }
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    bar.finish();
    let mut summary = summarize(&instances, &predictions, &reports);
    summary.reused = reused;
    summary.seconds = started.elapsed().as_secs_f64();
    summary.per_minute = (summary.completed_instances + summary.error_instances).saturating_sub(reused) as f64 * 60.0
        / summary.seconds.max(1e-9);
    std::fs::create_dir_all(&settings.run_dir).map_err(io(&settings.run_dir))?;
    let path = settings.run_dir.join("report.json");
    let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    write_atomic(&path, text.as_bytes()).map_err(io(&path))?;
    crate::context::print_summary(json, &summary, |summary| {
        println!(
            "{} instances, {} submitted: {} resolved, {} unresolved, {} empty patches, {} errors ({} reused) in {:.1} s -> {}",
            summary.total_instances,
            summary.submitted_instances,
            summary.resolved_instances,
            summary.unresolved_instances,
            summary.empty_patch_instances,
            summary.error_instances,
            summary.reused,
            summary.seconds,
            path.display()
        );
    });
    for problem in &problems {
        eprintln!("  {problem}");
    }
    Ok(crate::EXIT_OK)
}

/// Profiles, checkouts and environments of the repositories some instances belong to; the
/// instances of a repository without a usable profile are returned with the reason.
pub fn prepare_repositories(
    ctx: &Context,
    backend: &dyn Backend,
    instances: &[TaskInstance],
    profiles: BTreeMap<String, Profile>,
    out: &Path,
    quiet: bool,
) -> (BTreeMap<String, Repository>, Vec<String>) {
    let mut profiles = profiles;
    let mut repositories = BTreeMap::new();
    let mut problems = Vec::new();
    let names: BTreeSet<&str> = instances.iter().map(TaskInstance::repo_name).collect();
    for name in names {
        let Some(profile) = profiles.remove(name) else {
            problems.push(format!(
                "{name}: no profile (give one with --profile, or put it under {}/profiles/)",
                out.display()
            ));
            continue;
        };
        let prepared = ctx.checkout(&profile).and_then(|checkout| {
            crate::console::status(quiet, &format!("preparing the {} environment of {name} …", backend.name()));
            let log_dir = out.join("build_images").join("env").join(name);
            let env_id = backend.build_env(&profile, &checkout, &log_dir)?;
            Ok(Repository { profile, checkout, env_id })
        });
        match prepared {
            Ok(repository) => {
                repositories.insert(name.to_string(), repository);
            }
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    (repositories, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance() -> TaskInstance {
        TaskInstance {
            instance_id: "o__r.12345678.x__aaaaaaaa".into(),
            repo: "bugsmith/o__r.12345678".into(),
            base_commit: "o__r.12345678.x__aaaaaaaa".into(),
            patch: String::new(),
            fail_to_pass: vec!["t.py::test_a".into(), "t.py::test_b".into()],
            pass_to_pass: vec!["t.py::test_c".into(), "u.py::T::test_d[1]".into()],
            created_at: String::new(),
            image_name: String::new(),
            problem_statement: String::new(),
            strategy: String::new(),
            lines_changed: 0,
            hunks: 0,
            functions_changed: 0,
            files_changed: 0,
            num_f2p: 2,
        }
    }

    fn run(statuses: &[(&str, TestStatus)]) -> TestRun {
        TestRun { tests: statuses.iter().map(|(id, s)| ((*id).to_string(), *s)).collect(), ..TestRun::default() }
    }

    #[test]
    fn grading_follows_swe_bench_missing_fails_skipped_does_not_count() {
        let i = instance();
        let all = run(&[
            ("t.py::test_a", TestStatus::Passed),
            ("t.py::test_b", TestStatus::Xfail),
            ("t.py::test_c", TestStatus::Passed),
            ("u.py::T::test_d[1]", TestStatus::Passed),
        ]);
        assert_eq!(grade(&i, &all).1, "RESOLVED_FULL");
        let partial = run(&[
            ("t.py::test_a", TestStatus::Passed),
            ("t.py::test_c", TestStatus::Passed),
            ("u.py::T::test_d[1]", TestStatus::Passed),
        ]);
        let (status, resolution) = grade(&i, &partial);
        assert_eq!(resolution, "RESOLVED_PARTIAL");
        assert_eq!(status.FAIL_TO_PASS.failure, ["t.py::test_b"], "a missing test fails");
        let skipped = run(&[
            ("t.py::test_a", TestStatus::Passed),
            ("t.py::test_b", TestStatus::Skipped),
            ("t.py::test_c", TestStatus::Passed),
            ("u.py::T::test_d[1]", TestStatus::Passed),
        ]);
        assert_eq!(grade(&i, &skipped).1, "RESOLVED_FULL", "a skipped test is neither success nor failure");
        let broken_p2p = run(&[
            ("t.py::test_a", TestStatus::Passed),
            ("t.py::test_b", TestStatus::Passed),
            ("t.py::test_c", TestStatus::Failed),
            ("u.py::T::test_d[1]", TestStatus::Passed),
        ]);
        assert_eq!(grade(&i, &broken_p2p).1, "RESOLVED_NO");
    }

    #[test]
    fn test_files_come_from_the_ids_and_stay_inside_the_repository() {
        let mut i = instance();
        i.pass_to_pass.push("../../etc/x.py::test_e".into());
        i.pass_to_pass.push("test_f (tests.m.C.test_f)".into());
        assert_eq!(test_files(&i), ["t.py", "tests/m.py", "u.py"]);
    }

    #[test]
    fn predictions_read_from_lists_objects_and_lines() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("p.json");
        std::fs::write(&list, r#"[{"instance_id": "a", "model_patch": "x", "model_name_or_path": "org/m"}]"#).unwrap();
        let read = read_predictions(&list).unwrap();
        assert_eq!((read[0].model_dir().as_str(), read[0].model_patch.as_deref()), ("org__m", Some("x")));
        let object = dir.path().join("o.json");
        std::fs::write(&object, r#"{"a": {"instance_id": "a", "model_patch": null, "model_name_or_path": "m"}}"#)
            .unwrap();
        assert_eq!(read_predictions(&object).unwrap()[0].model_patch, None);
        let lines = dir.path().join("l.jsonl");
        std::fs::write(&lines, "{\"instance_id\": \"a\"}\n\n{\"instance_id\": \"b\", \"model_patch\": \"\"}\n")
            .unwrap();
        assert_eq!(read_predictions(&lines).unwrap().len(), 2);
        std::fs::write(&lines, "{\"instance_id\": \"a\"}\n{oops\n").unwrap();
        assert!(read_predictions(&lines).unwrap_err().to_string().contains("l.jsonl:2"));
    }

    #[test]
    fn summaries_count_empty_patches_errors_and_resolutions() {
        let mut a = instance();
        a.instance_id = "a".into();
        let mut b = a.clone();
        b.instance_id = "b".into();
        let mut c = a.clone();
        c.instance_id = "c".into();
        let prediction = |id: &str, patch: Option<&str>| Prediction {
            instance_id: id.into(),
            model_patch: patch.map(str::to_string),
            model_name_or_path: "m".into(),
        };
        let predictions = [
            prediction("a", Some("p")),
            prediction("b", Some("")),
            prediction("c", Some("p")),
            prediction("zz", Some("p")),
        ];
        let reports =
            BTreeMap::from([("a".to_string(), InstanceReport { resolved: true, ..InstanceReport::default() })]);
        let summary = summarize(&[a, b, c], &predictions, &reports);
        assert_eq!((summary.total_instances, summary.submitted_instances, summary.completed_instances), (3, 3, 1));
        assert_eq!(
            (summary.resolved_ids, summary.empty_patch_ids, summary.error_ids),
            (vec!["a".to_string()], vec!["b".to_string()], vec!["c".to_string()])
        );
        assert_eq!((summary.resolved, summary.unresolved, summary.total), (1, 2, 3));
    }
}
