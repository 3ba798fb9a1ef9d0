//! Reading test results and grading a candidate against the baseline. Pure: text in, values
//! out. Test ids are pytest node ids (`tests/test_x.py::TestA::test_b[p]`) whatever the source.
//!
//! Sources: pytest's JUnit XML side file (`-o junit_family=xunit1`, written outside the work tree),
//! pytest's verbose text as a fallback, unittest's verbose text.

use std::collections::{BTreeMap, BTreeSet};

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use serde::{Deserialize, Serialize};

/// One test's outcome.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "UPPERCASE")]
pub enum TestStatus {
    /// Passed (an unexpected pass of a non-strict xfail counts as passed).
    Passed,
    /// Skipped.
    Skipped,
    /// Expected failure.
    Xfail,
    /// An assertion or exception in the test.
    Failed,
    /// An error in setup or teardown.
    Error,
}

impl TestStatus {
    fn worst(self, other: TestStatus) -> TestStatus {
        self.max(other)
    }
}

/// Results of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TestRun {
    /// Status per test id.
    pub tests: BTreeMap<String, TestStatus>,
    /// Files (or modules) that failed to import during collection.
    pub collection_errors: BTreeSet<String>,
    /// Seconds per test, where the source records them (JUnit XML).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub seconds: BTreeMap<String, f64>,
}

impl TestRun {
    /// Number of tests with this status.
    pub fn count(&self, status: TestStatus) -> usize {
        self.tests.values().filter(|s| **s == status).count()
    }

    fn record(&mut self, id: String, status: TestStatus) {
        let entry = self.tests.entry(id).or_insert(status);
        *entry = entry.worst(status);
    }
}

/// The XML could not be read.
#[derive(Debug, thiserror::Error)]
#[error("unreadable JUnit XML: {0}")]
pub struct JunitError(String);

fn attribute(element: &BytesStart<'_>, name: &str) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name)
        .and_then(|a| a.normalized_value(XmlVersion::Implicit1_0).ok().map(|v| v.into_owned()))
}

/// Parses pytest's JUnit XML (xunit1: `file` attributes present) into node ids and statuses.
pub fn parse_junit(xml: &str) -> Result<TestRun, JunitError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut run = TestRun::default();
    // The open <testcase>: its id, whether it is a collection error, and its status so far.
    let mut current: Option<(String, Option<String>, TestStatus)> = None;
    let record_time = |run: &mut TestRun, id: &str, time: Option<String>| {
        if let Some(t) = time.and_then(|t| t.parse::<f64>().ok()) {
            *run.seconds.entry(id.to_string()).or_default() += t;
        }
    };
    loop {
        let event = reader.read_event().map_err(|e| JunitError(e.to_string()))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) if e.name().as_ref() == "testcase" => {
                let classname = attribute(e, "classname").unwrap_or_default();
                let name = attribute(e, "name").unwrap_or_default();
                let file = attribute(e, "file");
                let collection_file = (classname.is_empty()).then(|| module_to_path(&name, file.as_deref()));
                let id = node_id(&classname, &name, file.as_deref());
                if collection_file.is_none() {
                    record_time(&mut run, &id, attribute(e, "time"));
                }
                if matches!(event, Event::Empty(_)) {
                    run.record(id, TestStatus::Passed);
                } else {
                    current = Some((id, collection_file, TestStatus::Passed));
                }
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                if let Some((_, _, status)) = current.as_mut() {
                    let found = match e.name().as_ref() {
                        "failure" => Some(TestStatus::Failed),
                        "error" => Some(TestStatus::Error),
                        "skipped" => Some(if attribute(e, "type").as_deref() == Some("pytest.xfail") {
                            TestStatus::Xfail
                        } else {
                            TestStatus::Skipped
                        }),
                        _ => None,
                    };
                    if let Some(found) = found {
                        *status = if *status == TestStatus::Passed { found } else { status.worst(found) };
                    }
                }
            }
            Event::End(ref e) if e.name().as_ref() == "testcase" => {
                if let Some((id, collection_file, status)) = current.take() {
                    match collection_file {
                        Some(file) if status == TestStatus::Error || status == TestStatus::Failed => {
                            run.collection_errors.insert(file);
                        }
                        _ => run.record(id, status),
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(run)
}

/// The failure or error text of each failing test case in pytest's JUnit XML, by node id.
pub fn junit_failures(xml: &str) -> BTreeMap<String, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut failures = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut inside: Option<String> = None;
    while let Ok(event) = reader.read_event() {
        match event {
            Event::Start(ref e) if e.name().as_ref() == "testcase" => {
                let classname = attribute(e, "classname").unwrap_or_default();
                let name = attribute(e, "name").unwrap_or_default();
                current = Some(node_id(&classname, &name, attribute(e, "file").as_deref()));
            }
            Event::Start(ref e) if matches!(e.name().as_ref(), "failure" | "error") => {
                inside = Some(attribute(e, "message").unwrap_or_default());
            }
            Event::Text(ref t) if inside.is_some() => {
                if let Some(id) = &current {
                    let raw: &str = t.as_ref();
                    let text = quick_xml::escape::unescape(raw).map_or_else(|_| raw.to_string(), |c| c.into_owned());
                    failures.entry(id.clone()).or_insert_with(String::new).push_str(&text);
                }
            }
            Event::End(ref e) if matches!(e.name().as_ref(), "failure" | "error") => {
                if let (Some(id), Some(message)) = (&current, inside.take()) {
                    let entry = failures.entry(id.clone()).or_insert_with(String::new);
                    if entry.is_empty() {
                        entry.push_str(&message);
                    }
                }
            }
            Event::End(ref e) if e.name().as_ref() == "testcase" => current = None,
            Event::Eof => break,
            _ => {}
        }
    }
    failures
}

/// `tests.test_x` (+ file `tests/test_x.py`) → `tests/test_x.py`.
fn module_to_path(module: &str, file: Option<&str>) -> String {
    file.map_or_else(|| format!("{}.py", module.replace('.', "/")), str::to_string)
}

/// The pytest node id of a JUnit test case.
/// The test id of a JUnit `testcase` (a pytest node id when the file is known).
pub fn node_id(classname: &str, name: &str, file: Option<&str>) -> String {
    let Some(file) = file else {
        // xunit2 without `file`: the best guess is a module path for all but the last part.
        return match classname.rsplit_once('.') {
            Some((module, class)) if class.starts_with(char::is_uppercase) => {
                format!("{}.py::{class}::{name}", module.replace('.', "/"))
            }
            _ => format!("{}.py::{name}", classname.replace('.', "/")),
        };
    };
    let module = file.trim_end_matches(".py").replace(['/', '\\'], ".");
    let classes = classname.strip_prefix(&module).unwrap_or("").trim_start_matches('.');
    let mut id = file.to_string();
    for class in classes.split('.').filter(|c| !c.is_empty()) {
        id.push_str("::");
        id.push_str(class);
    }
    id.push_str("::");
    id.push_str(name);
    id
}

const STATUS_WORDS: [(&str, TestStatus); 6] = [
    ("PASSED", TestStatus::Passed),
    ("XPASS", TestStatus::Passed),
    ("FAILED", TestStatus::Failed),
    ("ERROR", TestStatus::Error),
    ("SKIPPED", TestStatus::Skipped),
    ("XFAIL", TestStatus::Xfail),
];

fn status_word(word: &str) -> Option<TestStatus> {
    STATUS_WORDS.iter().find(|(w, _)| *w == word).map(|(_, s)| *s)
}

/// Parses pytest's verbose text: `id STATUS [ 50%]` lines and `-rA` summary lines
/// `STATUS id - message`. Ids may contain spaces; collection errors (`ERROR tests/x.py`) are
/// recorded per file.
pub fn parse_pytest_text(text: &str) -> TestRun {
    let mut run = TestRun::default();
    for line in text.lines() {
        let line = line.trim_end();
        // `id STATUS [ 50%]` (the percentage is optional, e.g. with -n or narrow terminals).
        let body = match line.rfind(" [") {
            Some(at) if line.ends_with("%]") => line[..at].trim_end(),
            _ => line,
        };
        if let Some((id, status)) = verbose_line(body) {
            run.record(id.to_string(), status);
            continue;
        }
        // `STATUS id` or `STATUS id - message` from the short summary.
        if let Some((word, rest)) = line.split_once(' ')
            && let Some(status) = status_word(word)
        {
            let id = rest.split(" - ").next().unwrap_or(rest).trim();
            if id.contains("::") {
                run.record(id.to_string(), status);
            } else if status == TestStatus::Error && id.ends_with(".py") {
                run.collection_errors.insert(id.to_string());
            }
        }
    }
    run
}

/// `id STATUS` or `id STATUS (reason)`: the id and the status.
fn verbose_line(body: &str) -> Option<(&str, TestStatus)> {
    STATUS_WORDS.iter().find_map(|(word, status)| {
        let at = body.rfind(&format!(" {word}"))?;
        let rest = &body[at + 1 + word.len()..];
        let id = &body[..at];
        (id.contains("::") && !id.contains(" - ") && (rest.is_empty() || rest.starts_with(" (")))
            .then_some((id, *status))
    })
}

/// Parses unittest's verbose text: `test_name (module.Class[.test_name]) ... ok|FAIL|ERROR|skipped …|expected failure`.
pub fn parse_unittest_text(text: &str) -> TestRun {
    let mut run = TestRun::default();
    for line in text.lines() {
        let Some((name, outcome)) = line.split_once(" ... ") else { continue };
        let name = name.trim();
        // A module that failed to import: `test_x (unittest.loader._FailedTest.test_x) ... ERROR`.
        if let Some(module) = name.split_once("(unittest.loader._FailedTest.").map(|(_, m)| m.trim_end_matches(')')) {
            run.collection_errors.insert(module.to_string());
            continue;
        }
        let status = match outcome.trim() {
            "ok" | "unexpected success" => TestStatus::Passed,
            "FAIL" => TestStatus::Failed,
            "ERROR" => TestStatus::Error,
            "expected failure" => TestStatus::Xfail,
            o if o.starts_with("skipped") => TestStatus::Skipped,
            _ => continue,
        };
        run.record(name.to_string(), status);
    }
    run
}

/// Whether pytest's text reached its end: the final summary line (`=== 3 passed in 0.12s ===`,
/// also `-q`'s bare form), or one of the messages pytest ends with before running any test (a
/// conftest that fails to import, a usage error, an internal error).
pub fn pytest_finished(text: &str) -> bool {
    const WORDS: [&str; 9] =
        ["passed", "failed", "error", "errors", "skipped", "deselected", "xfailed", "xpassed", "no tests ran"];
    text.lines().any(|line| {
        let line = line.trim();
        if line.starts_with("ImportError while loading conftest")
            || line.starts_with("ERROR: usage:")
            || line.starts_with("ERROR: file or directory not found")
            || line.starts_with("ERROR: not found:")
            || line.starts_with("INTERNALERROR>")
        {
            return true;
        }
        let body = line.trim_matches(|c| c == '=' || c == ' ');
        let Some((counts, time)) = body.rsplit_once(" in ") else { return false };
        let time = time.split(' ').next().unwrap_or("");
        time.ends_with('s')
            && time.trim_end_matches('s').parse::<f64>().is_ok()
            && WORDS.iter().any(|w| counts.contains(w))
    })
}

/// Whether unittest's text reached its end: `Ran N tests in Xs`, then `OK`, `FAILED (…)` or
/// `NO TESTS RAN`.
pub fn unittest_finished(text: &str) -> bool {
    let mut ran = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("Ran ") && line.contains(" test") && line.contains(" in ") {
            ran = true;
        } else if ran
            && (line == "OK" || line.starts_with("OK (") || line.starts_with("FAILED (") || line == "NO TESTS RAN")
        {
            return true;
        }
    }
    false
}

/// The clean suite, run one or more times.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Baseline {
    /// Status of each test whose outcome was the same in every run.
    pub tests: BTreeMap<String, TestStatus>,
    /// Tests whose outcome differed between runs; never in F2P or P2P.
    pub flaky: BTreeSet<String>,
    /// Each test's longest duration over the runs, in seconds (when the results record it).
    pub test_seconds: BTreeMap<String, f64>,
    /// Seconds of the slowest run.
    pub seconds: f64,
    /// Runs made.
    pub runs: usize,
    /// Where the results came from (`junit`, `text`, …); candidates must match it.
    #[serde(default)]
    pub results_from: String,
}

impl Baseline {
    /// Combines repeated clean runs.
    pub fn from_runs(runs: &[TestRun], seconds: f64) -> Baseline {
        let mut baseline = Baseline { seconds, runs: runs.len(), ..Baseline::default() };
        for run in runs {
            for (id, t) in &run.seconds {
                let slowest = baseline.test_seconds.entry(id.clone()).or_default();
                *slowest = slowest.max(*t);
            }
        }
        let all: BTreeSet<&String> = runs.iter().flat_map(|r| r.tests.keys()).collect();
        for id in all {
            let statuses: BTreeSet<Option<TestStatus>> = runs.iter().map(|r| r.tests.get(id).copied()).collect();
            match statuses.into_iter().collect::<Vec<_>>().as_slice() {
                [Some(status)] => {
                    baseline.tests.insert(id.clone(), *status);
                }
                _ => {
                    baseline.flaky.insert(id.clone());
                }
            }
        }
        baseline
    }

    /// Tests that passed in every clean run.
    pub fn passing(&self) -> usize {
        self.tests.values().filter(|s| **s == TestStatus::Passed).count()
    }
}

/// How a test that passed on the clean code failed with the bug.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The test ran and failed.
    Failed,
    /// Setup or teardown errored.
    Error,
    /// Its file failed to import during collection.
    CollectionError,
    /// It did not appear in the results (older reports; tests that never ran are now `not_run`).
    Missing,
}

/// SWE-smith's report lists, plus why each F2P test failed.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Grade {
    /// Passed on the clean code, fail with the bug.
    #[serde(rename = "FAIL_TO_PASS")]
    pub fail_to_pass: Vec<String>,
    /// Passed on both.
    #[serde(rename = "PASS_TO_PASS")]
    pub pass_to_pass: Vec<String>,
    /// Failed on both.
    #[serde(rename = "FAIL_TO_FAIL")]
    pub fail_to_fail: Vec<String>,
    /// Failed on the clean code, pass with the bug.
    #[serde(rename = "PASS_TO_FAIL")]
    pub pass_to_fail: Vec<String>,
    /// For each F2P test: failed, error or collection_error.
    pub failure_kinds: BTreeMap<String, FailureKind>,
    /// Passed on the clean code but absent from the results, with no collection or import
    /// error to explain it: never ran, so neither F2P nor P2P.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_run: Vec<String>,
}

/// Whether a test missing from `run` is explained by a collection or import error of its file
/// (pytest ids) or module (unittest ids: `test_a (tests.test_x.TestX.test_a)`).
pub fn vanished_by_import_error(id: &str, run: &TestRun) -> bool {
    let file = id.split("::").next().unwrap_or(id);
    run.collection_errors.contains(file)
        || run
            .collection_errors
            .iter()
            .any(|module| id.contains(&format!("({module}.")) || id.contains(&format!("({module})")))
}

/// Compares a candidate's run with the baseline. Flaky tests, skips and xfails are left out;
/// unlike SWE-smith, a test that errored or vanished with an import error of its file counts
/// as failing; one that vanished without a reason never ran (`not_run`).
pub fn grade(baseline: &Baseline, run: &TestRun) -> Grade {
    let mut grade = Grade::default();
    for (id, clean) in &baseline.tests {
        let now = run.tests.get(id).copied();
        match clean {
            TestStatus::Passed => match now {
                Some(TestStatus::Passed) => grade.pass_to_pass.push(id.clone()),
                Some(TestStatus::Skipped | TestStatus::Xfail) => {}
                Some(status) => {
                    let kind = if status == TestStatus::Error { FailureKind::Error } else { FailureKind::Failed };
                    grade.fail_to_pass.push(id.clone());
                    grade.failure_kinds.insert(id.clone(), kind);
                }
                None if vanished_by_import_error(id, run) => {
                    grade.fail_to_pass.push(id.clone());
                    grade.failure_kinds.insert(id.clone(), FailureKind::CollectionError);
                }
                None => grade.not_run.push(id.clone()),
            },
            TestStatus::Failed | TestStatus::Error => match now {
                Some(TestStatus::Passed) => grade.pass_to_fail.push(id.clone()),
                Some(TestStatus::Skipped | TestStatus::Xfail) => {}
                _ => grade.fail_to_fail.push(id.clone()),
            },
            TestStatus::Skipped | TestStatus::Xfail => {}
        }
    }
    grade
}

/// The file of a test id and the dotted name of its function (`A.test_x`), without
/// parameters: pytest node ids (`t.py::A::test_x[p]`) and unittest's verbose names
/// (`test_x (pkg.t.A.test_x)`, or `test_x (pkg.t.A)` before Python 3.11); `None` otherwise.
pub fn test_location(id: &str) -> Option<(String, String)> {
    if let Some((file, rest)) = id.split_once("::") {
        let name = rest.split('[').next().unwrap_or(rest).replace("::", ".");
        return Some((file.to_string(), name));
    }
    let (method, dotted) = id.strip_suffix(')')?.split_once(" (")?;
    let dotted = dotted.strip_suffix(&format!(".{method}")).unwrap_or(dotted);
    let (module, class) = dotted.rsplit_once('.')?;
    if module.is_empty() || module == "__main__" {
        return None;
    }
    Some((format!("{}.py", module.replace('.', "/")), format!("{class}.{method}")))
}

#[cfg(test)]
mod tests;
