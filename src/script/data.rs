//! The values scripts are handed and return, as Rust types converted to and from Rhai in one
//! place (Rhai's serde support): renaming a field here renames it for every script, and
//! `strategies/README.md` is checked against these fields. The live handles (`Entity`, `Node`,
//! `Rng`, `Repo`) are registered types in `api.rs` and `repo.rs`.

use std::collections::BTreeMap;

use rhai::Dynamic;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A validated bug a combine script may merge (`fn combine(candidates, …)`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CandidateData {
    /// `<strategy>__<hash>`: what `parts` name.
    pub id: String,
    /// `<repo_name>.<id>`.
    pub instance_id: String,
    /// The strategy that made it.
    pub strategy: String,
    /// Its patch.
    pub patch: String,
    /// The files it touches.
    pub files: Vec<String>,
}

/// One merged group a combine script returns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Combo {
    /// The merged patch.
    pub patch: String,
    /// Ids of the candidates merged.
    pub parts: Vec<String>,
    /// Where to write it under `bug_gen/<repo_name>/` (a file folder or `combine_module`).
    pub folder: String,
}

/// One file's part of a patch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FilePatch {
    /// Repository-relative path.
    pub path: String,
    /// The part of the patch for that file.
    pub patch: String,
}

/// A real change a mirror script undoes (`fn mirror(change, …)`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeData {
    /// `pr_<number>` or `pr_<commit8>`.
    pub id: String,
    /// Commit subject or PR title.
    pub title: String,
    /// Commit body or PR text.
    pub issue_text: String,
    /// The change's patch.
    pub patch: String,
    /// Its per-file parts.
    pub files: Vec<FilePatch>,
}

/// What a mirror script returns for a change it could undo.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mirrored {
    /// The patch that puts the bug back.
    pub patch: String,
    /// How: `reverse` or `rewrite`.
    pub method: String,
}

/// A validated instance an issue template writes a statement for (`fn render(instance, …)`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceData {
    /// `<repo_name>.<strategy>__<hash>`.
    pub instance_id: String,
    /// `owner/name` of the mirror.
    pub repo: String,
    /// The bug's patch.
    pub patch: String,
    /// Tests the bug breaks.
    #[serde(rename = "FAIL_TO_PASS")]
    pub fail_to_pass: Vec<String>,
    /// Tests that pass either way.
    #[serde(rename = "PASS_TO_PASS")]
    pub pass_to_pass: Vec<String>,
    /// The environment image.
    pub image_name: String,
    /// The strategy that made it.
    pub strategy: String,
    /// The strategy's explanation.
    pub bug_type: String,
    /// Files the patch touches.
    pub gold_files: Vec<String>,
    /// The entity it mutated.
    pub gold_funcs: Vec<String>,
    /// A mirrored change's commit or PR title, else empty.
    pub original_title: String,
    /// A mirrored change's text, else empty.
    pub original_issue: String,
    /// The validation run's output.
    pub test_output: String,
    /// F2P test id → its failure text from the JUnit file.
    pub failures: BTreeMap<String, String>,
    /// F2P test id → the test function's source.
    pub test_sources: BTreeMap<String, String>,
}

pub use crate::settings::Params;

/// A Rust value as a script sees it.
pub(crate) fn to_script<T: Serialize>(value: &T) -> Dynamic {
    rhai::serde::to_dynamic(value).unwrap_or(Dynamic::UNIT)
}

/// A value a script returned, read as `T`; the error says what was expected in words.
pub(crate) fn from_script<T: DeserializeOwned>(value: &Dynamic, what: &str) -> Result<T, String> {
    rhai::serde::from_dynamic(value).map_err(|e| format!("{what}: {e}"))
}

/// The field names a type shows scripts (for the documentation check).
pub fn field_names<T: Serialize + Default>() -> Vec<String> {
    match serde_json::to_value(T::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_crosses_into_a_script_and_back_unchanged() {
        let change = ChangeData {
            id: "pr_1".into(),
            title: "t".into(),
            issue_text: String::new(),
            patch: "p".into(),
            files: vec![FilePatch { path: "a.py".into(), patch: "p".into() }],
        };
        let back: ChangeData = from_script(&to_script(&change), "change").unwrap();
        assert_eq!(back, change);
    }

    #[test]
    fn missing_fields_of_a_returned_combo_take_their_defaults() {
        let mut map = rhai::Map::new();
        map.insert("patch".into(), "diff".into());
        let combo: Combo = from_script(&Dynamic::from_map(map), "combo").unwrap();
        assert_eq!(combo, Combo { patch: "diff".into(), ..Combo::default() });
    }

    #[test]
    fn instance_fields_keep_swe_bench_spelling() {
        let names = field_names::<InstanceData>();
        assert!(names.contains(&"FAIL_TO_PASS".to_string()) && names.contains(&"PASS_TO_PASS".to_string()));
    }
}
