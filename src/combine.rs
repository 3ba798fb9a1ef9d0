//! Combining validated bugs (SWE-smith's same-file and same-module combine): a combine script
//! picks groups of validated candidates and merges each into one patch; the merged patches are
//! written as new candidates (`bug__<script>__<hash>.diff`), which then go through validation
//! like any other.

use std::collections::BTreeSet;
use std::path::Path;

use rhai::{Array, Dynamic, Map};
use serde::Serialize;

use crate::bug_gen::write_atomic;
use crate::gather::read_instances;
use crate::patch::hash8;
use crate::script::combine::CombineScript;

/// What a combine run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CombineSummary {
    /// The script.
    pub strategy: String,
    /// Validated candidates offered to it.
    pub candidates: usize,
    /// Merged patches written.
    pub combos: usize,
    /// Where they went.
    pub output: String,
}

/// Runs a combine script over the validated instances of a repository and writes its combos.
pub fn combine(
    script: &CombineScript,
    params: Map,
    seed: u64,
    repo_name: &str,
    checkout: &Path,
    out: &Path,
) -> Result<CombineSummary, String> {
    let instances = read_instances(&out.join("task_insts").join(format!("{repo_name}.json")))
        .map_err(|e| format!("{e}: combine works on validated instances; run validate and gather first"))?;
    let mut candidates = Array::new();
    for instance in &instances {
        let id = instance.instance_id.strip_prefix(&format!("{repo_name}.")).unwrap_or(&instance.instance_id);
        let local = crate::ids::LocalId::parse(id);
        if local.is_combined() || local.is_mirrored() {
            continue;
        }
        let mut map = Map::new();
        map.insert("id".into(), id.to_string().into());
        map.insert("instance_id".into(), instance.instance_id.clone().into());
        map.insert("strategy".into(), local.strategy().to_string().into());
        map.insert("patch".into(), instance.patch.clone().into());
        let files: Array = crate::patch::files_of(&instance.patch).into_iter().map(Dynamic::from).collect();
        map.insert("files".into(), Dynamic::from_array(files));
        candidates.push(Dynamic::from_map(map));
    }
    let bug_gen = out.join("bug_gen").join(repo_name);
    let mut summary = CombineSummary {
        strategy: script.id.clone(),
        candidates: candidates.len(),
        output: bug_gen.display().to_string(),
        ..CombineSummary::default()
    };
    let combos = script.run(candidates, params, seed, checkout.to_path_buf()).map_err(|e| e.to_string())?;
    let mut seen = BTreeSet::new();
    for combo in combos {
        if combo.patch.is_empty() || !seen.insert(combo.patch.clone()) {
            continue;
        }
        let dir = bug_gen.join(folder_within(&combo.folder).unwrap_or(script.id.as_str()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = format!("{}__{}", script.id, hash8(&combo.patch));
        let metadata = crate::candidates::CandidateMetadata {
            explanation: format!("{} bugs combined.", combo.parts.len()),
            strategy: script.id.clone(),
            patch_files: Some(combo.parts.clone()),
            num_patch_files: Some(combo.parts.len()),
            ..Default::default()
        };
        let json = metadata.to_json();
        write_atomic(&dir.join(format!("bug__{name}.diff")), combo.patch.as_bytes()).map_err(|e| e.to_string())?;
        write_atomic(&dir.join(format!("metadata__{name}.json")), json.as_bytes()).map_err(|e| e.to_string())?;
        summary.combos += 1;
    }
    Ok(summary)
}
/// A script-chosen folder, if it is a plain relative path that stays inside `bug_gen/`.
fn folder_within(folder: &str) -> Option<&str> {
    let path = Path::new(folder);
    let plain = path.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    (!folder.is_empty() && plain).then_some(folder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_that_would_leave_bug_gen_are_refused() {
        assert_eq!(folder_within("src/utils.py"), Some("src/utils.py"));
        for bad in ["", "../escape", "/etc", "a/../../b", "./x"] {
            assert_eq!(folder_within(bad), None, "{bad}");
        }
    }
}
