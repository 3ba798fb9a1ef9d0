//! Scripts that work on the whole repository rather than one entity, with a `Repo` handle:
//! combine scripts (`fn combine(candidates, params, rng, repo)` under `strategies/combine/`,
//! groups of validated candidates merged into one patch each) and PR-mirror scripts
//! (`fn mirror(change, params, rng, repo)` under `strategies/mirror/`, a change undone).
//! `repo.merge(patches)` applies patches in sequence to the clean commit and returns the merged
//! patch, or `()` when they conflict; `patch::files(diff)` lists the files a patch touches.

use std::path::PathBuf;
use std::sync::Arc;

use rhai::{Array, Dynamic, Engine};

use super::data::{self, CandidateData, ChangeData, Combo, Mirrored, Params};
use super::{Kind, Origin, Script, ScriptError};

/// The clean repository a script merges and reverses patches against.
#[derive(Clone)]
pub struct ScriptRepo {
    root: PathBuf,
}

/// Registers the `Repo` type: `repo.merge(patches)`, `repo.reverse(patch)` (the patch undone on
/// the clean commit, or `()`), `repo.file(path)` (its text at the clean commit, or `()`). Only
/// the repository-level hooks are handed one.
pub(super) fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<ScriptRepo>("Repo")
        .register_fn("merge", |repo: &mut ScriptRepo, patches: Array| {
            let patches: Vec<String> = patches.into_iter().map(|p| p.to_string()).collect();
            crate::git::merge_patches(&repo.root, &patches).map_or(Dynamic::UNIT, Dynamic::from)
        })
        .register_fn("reverse", |repo: &mut ScriptRepo, patch: &str| {
            crate::git::merge_patches(&repo.root, &[crate::patch::reverse(patch)]).map_or(Dynamic::UNIT, Dynamic::from)
        })
        .register_fn("file", |repo: &mut ScriptRepo, path: &str| {
            crate::git::head_file(&repo.root, path).map_or(Dynamic::UNIT, Dynamic::from)
        });
}

/// A combine script.
#[derive(Debug)]
pub struct CombineScript(Script);

/// A mirror script.
#[derive(Debug)]
pub struct MirrorScript(Script);

impl std::ops::Deref for CombineScript {
    type Target = Script;
    fn deref(&self) -> &Script {
        &self.0
    }
}

impl std::ops::Deref for MirrorScript {
    type Target = Script;
    fn deref(&self) -> &Script {
        &self.0
    }
}

impl CombineScript {
    /// Loads a combine script.
    pub fn load(engine: Arc<Engine>, origin: Origin) -> Result<CombineScript, ScriptError> {
        Script::open(engine, Kind::Combine, origin).map(CombineScript)
    }

    /// Runs the script over validated candidates with the clean repository at `root`.
    pub fn run(
        &self,
        candidates: &[CandidateData],
        params: &Params,
        seed: u64,
        root: PathBuf,
    ) -> Result<Vec<Combo>, ScriptError> {
        let compiled = self.current();
        let rng = super::rng_for(&[&seed.to_string(), &self.id]);
        let args = (data::to_script(&candidates), self.hook_params(&compiled, params), rng, ScriptRepo { root });
        let value = self.call(&compiled, args)?;
        data::from_script(&value, "an array of #{patch, parts, folder}").map_err(|e| self.returned(e))
    }
}

impl MirrorScript {
    /// Loads a mirror script.
    pub fn load(engine: Arc<Engine>, origin: Origin) -> Result<MirrorScript, ScriptError> {
        Script::open(engine, Kind::Mirror, origin).map(MirrorScript)
    }

    /// Runs the script on one change; `None` when it could not undo it.
    pub fn run(
        &self,
        change: &ChangeData,
        params: &Params,
        seed: u64,
        root: PathBuf,
    ) -> Result<Option<Mirrored>, ScriptError> {
        let compiled = self.current();
        let rng = super::rng_for(&[&seed.to_string(), &self.id, &change.id]);
        let args = (data::to_script(change), self.hook_params(&compiled, params), rng, ScriptRepo { root });
        let value = self.call(&compiled, args)?;
        if value.is_unit() {
            return Ok(None);
        }
        data::from_script(&value, "#{patch, method} or ()").map(Some).map_err(|e| self.returned(e))
    }
}
