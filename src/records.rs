//! What stages hand each other through files: a candidate's metadata (`metadata__<id>.json`),
//! its validation report (`report.json`) and the task instances (`task_insts/<repo_name>.json`), with the one place
//! that reads and writes instance files. Plain data; no stage owns it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::write_atomic;
use crate::grading::Grade;

/// An instance or report file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file holds something else.
    #[error("{location}: {message}")]
    Parse {
        /// `file` or `file:line`.
        location: String,
        /// What the parser said.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RecordError + '_ {
    move |source| RecordError::Io { path: path.to_path_buf(), source }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
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
    /// How the tests it ran were chosen (absent in reports from before selection existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<SelectionUsed>,
    /// Tests run for it (0 when decided without a run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests_run: Option<usize>,
    /// Where its P2P came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p2p_from: Option<P2pFrom>,
    /// Why it ran the whole suite (`selection: all`): the change runs at import, no per-test
    /// coverage, the verify sample's fallback, a selected module that no longer imports…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whole_suite_because: Option<String>,
    /// Environment, patch and test command: a report with the same key is not redone.
    pub key: String,
}

/// How a candidate's tests were chosen.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum SelectionUsed {
    /// The tests that execute its changes (per-test coverage).
    Covering,
    /// No test executes its changes: decided without a run.
    Uncovered,
    /// The whole suite.
    All,
}

/// Where a report's P2P came from.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum P2pFrom {
    /// A full-suite run with the patch.
    Run,
    /// The baseline's passing tests, less F2P and flaky ones (sound when coverage is complete).
    Baseline,
}

/// A SWE-bench task instance.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TaskInstance {
    /// `<repo_name>.<strategy>__<hash8>`; also the branch name.
    pub instance_id: String,
    /// The mirror repository, `<org>/<repo_name>` (SWE-smith's `mirror_name`).
    pub repo: String,
    /// The branch holding the bug (SWE-smith's convention: the instance id).
    pub base_commit: String,
    /// The patch that introduces the bug (its reverse is the fix).
    pub patch: String,
    /// Tests the bug breaks.
    #[serde(rename = "FAIL_TO_PASS")]
    pub fail_to_pass: Vec<String>,
    /// Tests that pass with and without the bug.
    #[serde(rename = "PASS_TO_PASS")]
    pub pass_to_pass: Vec<String>,
    /// When the candidate was validated (RFC 3339, UTC).
    pub created_at: String,
    /// The Docker image.
    pub image_name: String,
    /// The issue text (empty until `issue-gen`).
    pub problem_statement: String,
    /// The strategy that made the bug.
    #[serde(default)]
    pub strategy: String,
    /// Lines the patch adds or removes.
    #[serde(default)]
    pub lines_changed: usize,
    /// Hunks of the patch.
    #[serde(default)]
    pub hunks: usize,
    /// Functions the patch changes (innermost `def`s around its changed lines).
    #[serde(default)]
    pub functions_changed: usize,
    /// Files the patch changes.
    #[serde(default)]
    pub files_changed: usize,
    /// Number of FAIL_TO_PASS tests.
    #[serde(default)]
    pub num_f2p: usize,
}

impl TaskInstance {
    /// The repository it belongs to: `repo`'s part after the `/`, as SWE-smith looks it up.
    pub fn repo_name(&self) -> &str {
        self.repo.rsplit_once('/').map_or(self.repo.as_str(), |(_, name)| name)
    }
}

/// Writes the instance list as JSON and as JSON Lines (next to it), atomically.
pub fn write_instances(json_path: &Path, instances: &[TaskInstance]) -> Result<(), RecordError> {
    let json = serde_json::to_string_pretty(instances).unwrap_or_default() + "\n";
    write_atomic(json_path, json.as_bytes()).map_err(io(json_path))?;
    let mut lines = String::new();
    for instance in instances {
        lines.push_str(&serde_json::to_string(instance).unwrap_or_default());
        lines.push('\n');
    }
    let jsonl = json_path.with_extension("jsonl");
    write_atomic(&jsonl, lines.as_bytes()).map_err(io(&jsonl))
}

/// Reads an instance file (`.json` list or `.jsonl`).
pub fn read_instances(path: &Path) -> Result<Vec<TaskInstance>, RecordError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    if path.extension().is_some_and(|e| e == "jsonl") {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| RecordError::Parse {
                    location: format!("{}:{}", path.display(), i + 1),
                    message: e.to_string(),
                })
            })
            .collect()
    } else {
        serde_json::from_str(&text)
            .map_err(|e| RecordError::Parse { location: path.display().to_string(), message: e.to_string() })
    }
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

/// `metadata__<id>.json`, beside each `bug__<id>.diff` (SWE-smith's keys first; the rest
/// depends on the stage that made the candidate).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CandidateMetadata {
    /// Dollars a language model cost for it.
    #[serde(default)]
    pub cost: f64,
    /// What the bug does.
    #[serde(default)]
    pub explanation: String,
    /// The model's raw answer (SWE-smith's key; empty for procedural bugs).
    #[serde(default)]
    pub output: String,
    /// The rewritten entity (procedural and LM strategies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<String>,
    /// The strategy (or combine or mirror script).
    #[serde(default)]
    pub strategy: String,
    /// The entity's dotted name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// Its file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// First line of the entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_start: Option<usize>,
    /// Last line of the entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_end: Option<usize>,
    /// The entity's signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Combined bugs: the instance ids merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_files: Option<Vec<String>>,
    /// Combined bugs: how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_patch_files: Option<usize>,
    /// Mirrored changes: `reverse` or `rewrite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Mirrored changes: the change's title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Mirrored changes: the linked issue's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_text: Option<String>,
    /// Mirrored changes: where the change came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Mirrored changes: the change itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_patch: Option<String>,
}

impl CandidateMetadata {
    /// The JSON text written to disk.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// Reads a metadata file.
    pub fn read(path: &Path) -> Option<CandidateMetadata> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    }
}
