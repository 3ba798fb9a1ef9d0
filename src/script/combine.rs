//! Scripts that work on the whole repository rather than one entity, with a `Repo` handle:
//! combine scripts (`fn combine(candidates, params, rng, repo)` under `strategies/combine/`,
//! groups of validated candidates merged into one patch each) and PR-mirror scripts
//! (`fn mirror(change, params, rng, repo)` under `strategies/mirror/`, a change undone).
//! `repo.merge(patches)` applies patches in sequence to the clean commit and returns the merged
//! patch, or `()` when they conflict; `patch::files(diff)` lists the files a patch touches.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rhai::{AST, Array, Dynamic, Engine, Map};

use super::{Origin, ScriptError, api::ScriptRng, call_hook, origin_name, read_source};

/// Repository-level scripts merge or rewrite many patches, so they get longer than per-entity hooks.
const REPO_SCRIPT_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);
use crate::rng::Rng;

/// The clean repository a combine script merges patches against.
#[derive(Clone)]
pub struct ScriptRepo {
    root: PathBuf,
}

/// One merged group a combine script returned.
#[derive(Clone, Debug, PartialEq)]
pub struct Combo {
    /// The merged patch.
    pub patch: String,
    /// Ids (`<strategy>__<hash>`) of the candidates merged.
    pub parts: Vec<String>,
    /// Where to write it under `bug_gen/<repo_name>/` (a file folder or `combine_module`).
    pub folder: String,
}

/// A loaded repository-level script.
pub struct RepoScript {
    /// Its id (file stem): the strategy name of what it makes.
    pub id: String,
    engine: Engine,
    ast: AST,
    source: String,
    path: String,
    hook: &'static str,
    /// Sibling `<id>.<name>.md` prompt files.
    pub prompts: Map,
}

/// A combine script.
pub type CombineScript = RepoScript;

/// An engine with the `Repo` type: `repo.merge(patches)`, `repo.reverse(patch)` (the patch
/// undone on the clean commit, or `()`), `repo.file(path)` (its text at the clean commit, or `()`).
pub(crate) fn engine(lm: Option<std::sync::Arc<crate::lm::LmClient>>) -> Engine {
    let mut engine = super::engine_with_lm(lm);
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
    engine
}

impl ScriptRepo {
    /// A handle on the clean repository at `root`.
    pub fn new(root: PathBuf) -> ScriptRepo {
        ScriptRepo { root }
    }
}

impl RepoScript {
    /// Loads a combine script.
    pub fn load(origin: Origin) -> Result<RepoScript, ScriptError> {
        RepoScript::load_with(origin, "combine", "candidates", None)
    }

    /// Loads a script whose hook is `fn <hook>(<first>, params, rng, repo)`.
    pub fn load_with(
        origin: Origin,
        hook: &'static str,
        first: &str,
        lm: Option<std::sync::Arc<crate::lm::LmClient>>,
    ) -> Result<RepoScript, ScriptError> {
        let path = origin_name(&origin);
        let source = read_source(&origin)?;
        let engine = engine(lm);
        let mut ast = engine.compile(&source).map_err(|e| ScriptError::from_parse(&path, &e))?;
        ast.set_source(path.as_str());
        if !ast.iter_functions().any(|f| f.name == hook && f.params.len() == 4) {
            return Err(ScriptError {
                path,
                line: 0,
                column: 0,
                message: format!("this script must define `fn {hook}({first}, params, rng, repo)`"),
            });
        }
        let prompts = super::template::prompts_for(&origin);
        Ok(RepoScript { id: super::catalog::origin_id(&origin), engine, ast, source, path, hook, prompts })
    }

    /// Calls the hook.
    pub fn call(
        &self,
        first: Dynamic,
        mut params: Map,
        rng_key: &[&str],
        root: PathBuf,
    ) -> Result<Dynamic, ScriptError> {
        params.insert("prompts".into(), Dynamic::from_map(self.prompts.clone()));
        let rng = ScriptRng(Arc::new(Mutex::new(Rng::from_key(rng_key))));
        call_hook(
            &self.engine,
            &self.ast,
            &self.source,
            &self.path,
            self.hook,
            (first, params, rng, ScriptRepo { root }),
            REPO_SCRIPT_TIME_LIMIT,
        )
    }

    /// The script's path for messages.
    pub fn display_path(&self) -> String {
        self.path.clone()
    }

    /// Runs the script over candidates (maps) with the clean repository at `root`.
    pub fn run(&self, candidates: Array, params: Map, seed: u64, root: PathBuf) -> Result<Vec<Combo>, ScriptError> {
        let rng = ScriptRng(Arc::new(Mutex::new(Rng::from_key(&[&seed.to_string(), &self.id]))));
        let repo = ScriptRepo { root };
        let value = call_hook(
            &self.engine,
            &self.ast,
            &self.source,
            &self.path,
            "combine",
            (candidates, params, rng, repo),
            REPO_SCRIPT_TIME_LIMIT,
        )?;
        let bad = |message: String| ScriptError { path: self.path.clone(), line: 0, column: 0, message };
        let groups = value.into_array().map_err(|t| bad(format!("combine returned {t}, not an array")))?;
        groups
            .into_iter()
            .map(|group| {
                let map =
                    group.try_cast::<Map>().ok_or_else(|| bad("each combo is a map #{patch, parts, folder}".into()))?;
                let text = |k: &str| map.get(k).map(ToString::to_string).unwrap_or_default();
                let parts = map
                    .get("parts")
                    .and_then(|p| p.clone().into_array().ok())
                    .map(|a| a.into_iter().map(|p| p.to_string()).collect())
                    .unwrap_or_default();
                Ok(Combo { patch: text("patch"), parts, folder: text("folder") })
            })
            .collect()
    }
}
