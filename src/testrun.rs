//! Running a repository's tests once in a worker, the way validation and evaluation both do:
//! the runner protocol (environment, markers, results read back from JUnit or text), the clean
//! baseline (run, checked and stored under `<repo_name>.ref/`), the per-candidate timeout, and
//! the patches refused before anything runs.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::backend::Worker;
use crate::context::Error;
use crate::coverage::TestCoverage;
use crate::files::write_atomic;
use crate::grading::{self, Baseline, TestRun};
use crate::patch::hash8;
use crate::profile::{LogParser, Profile};
use crate::records::ErrorKind;

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
    /// Per-test coverage (the plugin's JSON), when it was asked for and recorded.
    pub coverage: Option<String>,
}

/// What a run asks of bugsmith's pytest plugin (pytest profiles only).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunOptions {
    /// Run only these tests (pytest node ids).
    pub select: Option<Vec<String>>,
    /// Record which lines each test executes.
    pub coverage: bool,
    /// Leave the random generators as the tests find them (a baseline run that looks for tests
    /// whose results vary with them).
    pub unseeded: bool,
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
    run_with(worker, profile, patch, timeout, &RunOptions::default())
}

/// [`run_once`] with some tests only, or with per-test coverage.
pub fn run_with(
    worker: &mut dyn Worker,
    profile: &Profile,
    patch: &str,
    timeout: Duration,
    options: &RunOptions,
) -> RunResult {
    let mut env = runner_env(worker, profile, timeout);
    let selected = options.select.as_ref().map(|ids| ids.join("\n") + "\n").unwrap_or_default();
    let mut files = vec![("patch.diff", patch)];
    let scratch = worker.scratch();
    if options.select.is_some() {
        files.push(("select.txt", selected.as_str()));
        env.push(("BUGSMITH_SELECT".into(), format!("{scratch}/select.txt")));
    }
    if options.coverage {
        env.push(("BUGSMITH_COVERAGE".into(), format!("{scratch}/coverage.json")));
    }
    if options.unseeded {
        env.push(("BUGSMITH_UNSEEDED".into(), "1".into()));
    }
    let output = match worker.run_candidate(&files, env, timeout + Duration::from_secs(60)) {
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
        } else if let Some(data) = marker.strip_prefix("coverage ") {
            result.coverage = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .ok()
                .map(|json| String::from_utf8_lossy(&json).into_owned());
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

/// The baseline file, next to the reports (SWE-smith's `<repo_name>.ref` folder).
#[derive(Serialize, Deserialize)]
struct StoredBaseline {
    key: String,
    baseline: Baseline,
}

/// Runs (or reuses) the clean baseline; fails when it times out or no test passes.
pub fn baseline(worker: &mut dyn Worker, profile: &Profile, env_id: &str, run_dir: &Path) -> Result<Baseline, Error> {
    let ref_dir = run_dir.join(format!("{}.ref", profile.repo_name));
    let key = hash8(&format!("baseline v3\n{env_id}\n{}\n{}", profile.test_setup(), profile.baseline_runs));
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
        // The first run as candidates run (tests start from the same random state); the others
        // unseeded, so a test whose result depends on the random draw shows as flaky.
        let options = RunOptions { unseeded: i > 0, ..RunOptions::default() };
        let result = run_with(worker, profile, "", Duration::from_secs(profile.timeout_ref), &options);
        let _ = write_atomic(&ref_dir.join("test_output.txt"), result.output.as_bytes());
        if result.timed_out {
            return Err(Error::Run(format!(
                "the clean test suite of {} timed out after {} s (run {}; timeout_ref in the profile); output: {}",
                profile.repo_name,
                profile.timeout_ref,
                i + 1,
                ref_dir.join("test_output.txt").display()
            )));
        }
        if let Some(reason) = result.broken {
            return Err(Error::Run(format!("the baseline run failed: {reason}")));
        }
        if let Some((_, why)) = result.incomplete() {
            return Err(Error::Run(format!(
                "the clean test suite of {} did not finish: {why}; output: {}",
                profile.repo_name,
                ref_dir.join("test_output.txt").display()
            )));
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
        return Err(Error::Run(format!(
            "no test passes on the clean code of {} ({} results); {hint}; output: {}",
            profile.repo_name,
            runs.last().map_or(0, |r| r.tests.len()),
            ref_dir.join("test_output.txt").display()
        )));
    }
    let stored = StoredBaseline { key, baseline: baseline.clone() };
    let json = serde_json::to_string_pretty(&stored).map_err(|e| e.to_string())?;
    write_atomic(&path, json.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(baseline)
}

/// The timeout of a run of some tests only: the baseline's time outside tests (start-up,
/// collection) plus those tests' durations, in [`candidate_timeout`]'s formula and floor.
pub fn selected_timeout(timeout: Option<u64>, profile: &Profile, baseline: &Baseline, ids: &[&str]) -> u64 {
    let all: f64 = baseline.test_seconds.values().sum();
    let outside_tests = (baseline.seconds - all).max(0.0);
    let selected: f64 = ids.iter().filter_map(|id| baseline.test_seconds.get(*id)).sum();
    timeout.or(profile.timeout).unwrap_or_else(|| (5.0 * (outside_tests + selected)).ceil().max(20.0) as u64)
}

/// Why a repository has no per-test coverage (its candidates then run whole suites).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no per-test coverage: {0}")]
pub struct NoCoverage(pub String);

/// The per-test coverage of the clean code: one more baseline run, under bugsmith's pytest
/// plugin, stored as `<repo_name>.ref/coverage.json` with the baseline's key and reused.
pub fn baseline_coverage(
    worker: &mut dyn Worker,
    profile: &Profile,
    env_id: &str,
    run_dir: &Path,
) -> Result<TestCoverage, NoCoverage> {
    if profile.log_parser != LogParser::Pytest {
        return Err(NoCoverage("the tests do not run under pytest (only pytest runs can be selected)".into()));
    }
    let ref_dir = run_dir.join(format!("{}.ref", profile.repo_name));
    let key = hash8(&format!("coverage v1\n{env_id}\n{}", profile.test_setup()));
    let path = ref_dir.join("coverage.json");
    let key_path = ref_dir.join("coverage.key");
    if std::fs::read_to_string(&key_path).is_ok_and(|k| k.trim() == key)
        && let Ok(coverage) = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|json| TestCoverage::parse(&json).map_err(|e| e.to_string()))
    {
        return Ok(coverage);
    }
    // Tracing slows tests down: the suite gets more time than its own timeout.
    let timeout = Duration::from_secs(profile.timeout_ref.saturating_mul(4));
    let options = RunOptions { coverage: true, ..RunOptions::default() };
    let result = run_with(worker, profile, "", timeout, &options);
    if result.timed_out {
        return Err(NoCoverage(format!("the suite under coverage took longer than {} s", timeout.as_secs())));
    }
    if let Some(why) = result.broken {
        return Err(NoCoverage(format!("the coverage run failed: {why}")));
    }
    let json = result.coverage.ok_or_else(|| {
        NoCoverage(format!(
            "the plugin recorded nothing (is coverage.py installed?): {}",
            crate::backend::tail(&result.output, 3)
        ))
    })?;
    let coverage = TestCoverage::parse(&json).map_err(|e| NoCoverage(e.to_string()))?;
    std::fs::create_dir_all(&ref_dir).map_err(|e| NoCoverage(format!("{}: {e}", ref_dir.display())))?;
    write_atomic(&path, json.as_bytes()).map_err(|e| NoCoverage(format!("{}: {e}", path.display())))?;
    write_atomic(&key_path, key.as_bytes()).map_err(|e| NoCoverage(format!("{}: {e}", key_path.display())))?;
    Ok(coverage)
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
pub fn candidate_timeout(timeout: Option<u64>, profile: &Profile, baseline: &Baseline) -> u64 {
    timeout.or(profile.timeout).unwrap_or_else(|| (5.0 * baseline.seconds).ceil().max(20.0) as u64)
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

/// An `eval.sh` in SWE-smith's shape: what runs the tests in the image's `/testbed`.
pub fn eval_script(test_cmd: &str) -> String {
    format!(
        "#!/bin/bash\nset -uxo pipefail\ncd /testbed\n: '>>>>> Start Test Output'\n{test_cmd}\n: '>>>>> End Test Output'\n"
    )
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
}
