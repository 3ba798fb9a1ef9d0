//! PR mirroring: take real changes to the repository (commits from its own history, or merged
//! GitHub pull requests) and undo them on the current commit, so the tests the change made pass
//! fail again. A mirror script (`strategies/mirror/`) decides how: reverse-apply the change, or
//! ask a language model to rewrite each touched file without it.

use std::path::Path;

use serde::Serialize;

pub use crate::changes::{Change, is_mirrored_path};
use crate::console;
use crate::context::{Context, Error, Outcome};
use crate::files::write_atomic;
use crate::progress::{Problem, Progress};
use crate::script::data::{ChangeData, FilePatch, Params};
use crate::script::repo::MirrorScript;
use crate::settings::MirrorSettings;

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
pub fn changes_from_history(checkout: &Path, limit: usize) -> Result<Vec<Change>, Error> {
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

/// The per-file parts of a patch.
fn file_parts(patch: &str) -> Vec<FilePatch> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut flush = |current: &mut String| {
        if let Some(path) = crate::patch::files_of(current).first() {
            parts.push(FilePatch { path: path.clone(), patch: current.clone() });
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
    script: &MirrorScript,
    changes: &[Change],
    params: &Params,
    seed: u64,
    repo_name: &str,
    checkout: &Path,
    out: &Path,
    progress: &dyn Progress,
) -> Result<MirrorSummary, Error> {
    let mut summary = MirrorSummary { changes: changes.len(), ..MirrorSummary::default() };
    progress.phase("mirroring", changes.len() as u64);
    for change in changes {
        let data = ChangeData {
            id: change.id.clone(),
            title: change.title.clone(),
            issue_text: change.issue_text.clone(),
            patch: change.patch.clone(),
            files: file_parts(&change.patch),
        };
        crate::script::lm_api::take_cost();
        let result = script.run(&data, params, seed, checkout.to_path_buf());
        let cost = crate::script::lm_api::take_cost();
        summary.cost += cost;
        progress.advance(1);
        let made = match result {
            Ok(made) => made,
            Err(e) => {
                progress.problem(&Problem { location: change.id.clone(), message: e.to_string() });
                None
            }
        };
        let Some(crate::script::data::Mirrored { patch, method }) = made else {
            summary.failed += 1;
            continue;
        };
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
        let metadata = crate::records::CandidateMetadata {
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

/// `bugsmith mirror`: real changes of the profile's repository, undone, as candidates.
pub fn command(ctx: &Context, profile_path: &Path, settings: &MirrorSettings, out: &Path, json: bool) -> Outcome {
    let profile = ctx.profile(profile_path)?;
    let checkout = ctx.checkout(&profile)?;
    let changes = match settings.from.as_str() {
        "github" => {
            let name = settings.github_repo.as_deref().ok_or("--from github needs --github-repo OWNER/NAME")?;
            let token = std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty());
            crate::github::changes(&settings.github_api, name, token.as_deref(), settings.limit)?
        }
        _ => changes_from_history(&checkout.root, settings.limit)?,
    };
    let lm = ctx.lm(settings.lm.clone())?;
    let catalog = ctx.catalog_with(&lm);
    let script = MirrorScript::load(catalog.engine(), catalog.resolve("mirror", &settings.strategy)?)?;
    let bar = console::Bar::new(json);
    let summary =
        mirror(&script, &changes, &Params::default(), settings.seed, &profile.repo_name, &checkout.root, out, &bar);
    bar.finish();
    let summary = summary?;
    crate::context::write_ledger(out, &lm)?;
    crate::context::print_summary(json, &summary, |summary| {
        println!(
            "{} changes: {} undone by reverse-applying, {} rewritten by the model, {} without a candidate; ${:.4} spent",
            summary.changes, summary.reversed, summary.rewritten, summary.failed, summary.cost
        );
    });
    Ok(crate::EXIT_OK)
}
