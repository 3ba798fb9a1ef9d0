//! PR mirroring: take real changes to the repository (commits from its own history, or merged
//! GitHub pull requests) and undo them on the current commit, so the tests the change made pass
//! fail again. A mirror script (`strategies/mirror/`) decides how: reverse-apply the change, or
//! ask a language model to rewrite each touched file without it.

use std::path::Path;

use rhai::{Array, Dynamic, Map};
use serde::Serialize;

use crate::bug_gen::{Problem, Progress, write_atomic};
pub use crate::changes::{Change, is_mirrored_path};
use crate::script::combine::RepoScript;

/// What a mirror run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MirrorSummary {
    /// Changes looked at.
    pub changes: usize,
    /// Candidates made by reverse-applying the change.
    pub reversed: usize,
    /// Candidates made by a language model.
    pub rewritten: usize,
    /// Changes that gave no candidate.
    pub failed: usize,
    /// Dollars spent.
    pub cost: f64,
}

/// Commits of the checkout's history touching 1 to 8 source files.
pub fn changes_from_history(checkout: &Path, limit: usize) -> Result<Vec<Change>, String> {
    let commits = crate::git::history(checkout, limit.saturating_mul(4).max(limit), is_mirrored_path)
        .map_err(|e| e.to_string())?;
    Ok(commits
        .into_iter()
        .filter(|c| (1..=8).contains(&c.files.len()))
        .take(limit)
        .map(|c| Change {
            id: format!("pr_{}", &c.id[..8]),
            title: c.title,
            issue_text: c.body,
            patch: c.patch,
            origin: format!("commit {}", c.id),
        })
        .collect())
}

/// The per-file parts of a patch: `#{path, patch}` maps.
fn file_parts(patch: &str) -> Array {
    let mut parts = Array::new();
    let mut current = String::new();
    let mut flush = |current: &mut String| {
        if let Some(path) = crate::patch::files_of(current).first() {
            let mut map = Map::new();
            map.insert("path".into(), path.clone().into());
            map.insert("patch".into(), current.clone().into());
            parts.push(Dynamic::from_map(map));
        }
        current.clear();
    };
    for line in patch.split_inclusive('\n') {
        if line.starts_with("diff --git ") {
            flush(&mut current);
        }
        current.push_str(line);
    }
    flush(&mut current);
    parts
}

/// Runs the mirror script on each change and writes the candidates under
/// `bug_gen/<repo_name>/pr_mirror/<id>/`.
#[allow(clippy::too_many_arguments)]
pub fn mirror(
    script: &RepoScript,
    changes: &[Change],
    params: &Map,
    seed: u64,
    repo_name: &str,
    checkout: &Path,
    out: &Path,
    progress: &dyn Progress,
) -> Result<MirrorSummary, String> {
    let mut summary = MirrorSummary { changes: changes.len(), ..MirrorSummary::default() };
    progress.phase("mirroring", changes.len() as u64);
    for change in changes {
        let mut map = Map::new();
        map.insert("id".into(), change.id.clone().into());
        map.insert("title".into(), change.title.clone().into());
        map.insert("issue_text".into(), change.issue_text.clone().into());
        map.insert("patch".into(), change.patch.clone().into());
        map.insert("files".into(), Dynamic::from_array(file_parts(&change.patch)));
        crate::script::lm_api::take_cost();
        let result = script.call(
            Dynamic::from_map(map),
            params.clone(),
            &[&seed.to_string(), &script.id, &change.id],
            checkout.to_path_buf(),
        );
        let cost = crate::script::lm_api::take_cost();
        summary.cost += cost;
        progress.advance(1);
        let made = match result {
            Ok(value) => value.try_cast::<Map>(),
            Err(e) => {
                progress.problem(&Problem { location: change.id.clone(), message: e.to_string() });
                None
            }
        };
        let Some(made) = made else {
            summary.failed += 1;
            continue;
        };
        let patch = made.get("patch").map(ToString::to_string).unwrap_or_default();
        let method = made.get("method").map(ToString::to_string).unwrap_or_default();
        if patch.trim().is_empty() {
            summary.failed += 1;
            continue;
        }
        if method == "reverse" {
            summary.reversed += 1;
        } else {
            summary.rewritten += 1;
        }
        let dir = out.join("bug_gen").join(repo_name).join("pr_mirror").join(&change.id);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let metadata = crate::candidates::CandidateMetadata {
            cost,
            explanation: format!("The change \"{}\" is undone.", change.title),
            strategy: crate::ids::MIRROR_STRATEGY.into(),
            method: Some(method.to_string()),
            title: Some(change.title.clone()),
            issue_text: Some(change.issue_text.clone()),
            origin: Some(change.origin.clone()),
            original_patch: Some(change.patch.clone()),
            ..Default::default()
        };
        let json = metadata.to_json();
        write_atomic(&dir.join(format!("bug__{}.diff", change.id)), patch.as_bytes()).map_err(|e| e.to_string())?;
        write_atomic(&dir.join(format!("metadata__{}.json", change.id)), json.as_bytes()).map_err(|e| e.to_string())?;
    }
    Ok(summary)
}
