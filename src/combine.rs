//! Combining validated bugs (SWE-smith's same-file and same-module combine): a combine script
//! picks groups of validated candidates and merges each into one patch; the merged patches are
//! written as new candidates (`bug__<script>__<hash>.diff`), which then go through validation
//! like any other.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use crate::context::{Context, Error, Outcome};
use crate::files::write_atomic;
use crate::patch::hash8;
use crate::records::read_instances;
use crate::script::data::{CandidateData, Params};
use crate::script::repo::CombineScript;
use crate::settings::CombineSettings;

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
    params: &Params,
    seed: u64,
    repo_name: &str,
    checkout: &Path,
    out: &Path,
) -> Result<CombineSummary, Error> {
    let instances = read_instances(&out.join("task_insts").join(format!("{repo_name}.json")))
        .map_err(|e| format!("{e}: combine works on validated instances; run validate and gather first"))?;
    let mut candidates = Vec::new();
    for instance in &instances {
        let Some(id) = crate::ids::InstanceId::parse(repo_name, &instance.instance_id) else { continue };
        if id.local.is_combined() || id.local.is_mirrored() {
            continue;
        }
        candidates.push(CandidateData {
            id: id.local.to_string(),
            instance_id: instance.instance_id.clone(),
            strategy: id.local.strategy().to_string(),
            patch: instance.patch.clone(),
            files: crate::patch::files_of(&instance.patch),
        });
    }
    let bug_gen = out.join("bug_gen").join(repo_name);
    let mut summary = CombineSummary {
        strategy: script.id.clone(),
        candidates: candidates.len(),
        output: bug_gen.display().to_string(),
        ..CombineSummary::default()
    };
    let combos = script.run(&candidates, params, seed, checkout.to_path_buf()).map_err(|e| e.to_string())?;
    let mut seen = BTreeSet::new();
    for combo in combos {
        if combo.patch.is_empty() || !seen.insert(combo.patch.clone()) {
            continue;
        }
        let dir = bug_gen.join(folder_within(&combo.folder).unwrap_or(script.id.as_str()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = format!("{}__{}", script.id, hash8(&combo.patch));
        let metadata = crate::records::CandidateMetadata {
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

/// `bugsmith combine`: each combine script over the profile's validated instances.
pub fn command(ctx: &Context, profile_path: &Path, settings: &CombineSettings, out: &Path, json: bool) -> Outcome {
    let profile = ctx.profile(profile_path)?;
    let checkout = ctx.checkout(&profile)?;
    let mut summaries = Vec::new();
    for (spec, params) in &settings.scripts {
        let script = CombineScript::load(ctx.catalog.engine(), ctx.catalog.resolve("combine", spec)?)?;
        let summary = combine(&script, params, settings.seed, &profile.repo_name, &checkout.root, out)?;
        if !json {
            println!(
                "{}: {} merged candidates from {} validated bugs -> {}",
                summary.strategy, summary.combos, summary.candidates, summary.output
            );
        }
        summaries.push(summary);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&summaries).unwrap_or_default());
    }
    Ok(crate::EXIT_OK)
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
