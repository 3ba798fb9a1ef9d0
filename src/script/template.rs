//! Issue templates: scripts under `strategies/issues/` with `fn render(instance, params, rng)`
//! returning the problem statement. Their prompts live in sibling files `<id>.<name>.md`, handed
//! to the script as `params.prompts.<name>`. The `lm::` namespace is registered for them.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rhai::{AST, Dynamic, Engine, Map};

use super::{Origin, ScriptError, api::ScriptRng, call_hook, origin_name, read_source};
use crate::lm::LmClient;
use crate::rng::Rng;

/// A loaded issue template.
pub struct IssueTemplate {
    /// The id (file stem).
    pub id: String,
    engine: Engine,
    ast: AST,
    source: String,
    path: String,
    prompts: Map,
    /// The model and temperature, for templates that call one.
    model: String,
}

impl IssueTemplate {
    /// A short hash of what shapes a statement besides the instance: the script, its prompts,
    /// `params` and the model it calls. Stored with each statement, so changing any re-renders.
    pub fn fingerprint(&self, params: &Map) -> String {
        crate::patch::hash8(&format!("{}\n{:?}\n{:?}\n{}", self.source, self.prompts, params, self.model))
    }
}

/// What a render produced.
pub struct Rendered {
    /// The problem statement.
    pub text: String,
    /// Dollars spent on language-model calls for it.
    pub cost: f64,
}

impl IssueTemplate {
    /// Loads a template and its sibling prompt files; `lm` is the client `lm::chat` uses.
    pub fn load(origin: Origin, lm: Option<Arc<LmClient>>) -> Result<IssueTemplate, ScriptError> {
        let path = origin_name(&origin);
        let id = super::catalog::origin_id(&origin);
        let source = read_source(&origin)?;
        let model = lm.as_ref().map_or(String::new(), |c| format!("{} {}", c.config().model, c.config().temperature));
        let engine = super::engine_with_lm(lm);
        let mut ast = engine.compile(&source).map_err(|e| ScriptError::from_parse(&path, &e))?;
        ast.set_source(path.as_str());
        if !ast.iter_functions().any(|f| f.name == "render" && f.params.len() == 3) {
            return Err(ScriptError {
                path,
                line: 0,
                column: 0,
                message: "an issue template must define `fn render(instance, params, rng)`".into(),
            });
        }
        let prompts = prompts_for(&origin);
        let model = if source.contains("lm::chat") { model } else { String::new() };
        Ok(IssueTemplate { id, engine, ast, source, path, prompts, model })
    }

    /// Renders one instance; the random stream comes from (seed, template, instance).
    pub fn render(&self, instance: Map, params: &Map, seed: u64) -> Result<Rendered, ScriptError> {
        let instance_id = instance.get("instance_id").map(ToString::to_string).unwrap_or_default();
        let rng = ScriptRng(Arc::new(Mutex::new(Rng::from_key(&[&seed.to_string(), &self.id, &instance_id]))));
        let mut params = params.clone();
        params.insert("prompts".into(), Dynamic::from_map(self.prompts.clone()));
        super::lm_api::take_cost();
        let value = call_hook(
            &self.engine,
            &self.ast,
            &self.source,
            &self.path,
            "render",
            (instance, params, rng),
            super::CALL_TIME_LIMIT,
        )?;
        let text = value.into_string().map_err(|t| ScriptError {
            path: self.path.clone(),
            line: 0,
            column: 0,
            message: format!("render returned {t}, not a string"),
        })?;
        Ok(Rendered { text, cost: super::lm_api::take_cost() })
    }
}

/// `<id>.<name>.md` files next to the script (or among the built-in copies), by name.
pub(crate) fn prompts_for(origin: &Origin) -> Map {
    let id = super::catalog::origin_id(origin);
    let mut prompts = Map::new();
    let prefix = format!("{id}.");
    match origin {
        Origin::File(path) => {
            let dir = path.parent().unwrap_or(Path::new("."));
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if let Some(key) = name.strip_prefix(&prefix).and_then(|n| n.strip_suffix(".md"))
                    && let Ok(text) = std::fs::read_to_string(entry.path())
                {
                    prompts.insert(key.into(), text.into());
                }
            }
        }
        Origin::Builtin(name, _) => {
            let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
            for (path, text) in super::catalog::builtin_files() {
                let Some(file) = path.strip_prefix(&format!("{dir}/")) else { continue };
                if let Some(key) = file.strip_prefix(&prefix).and_then(|n| n.strip_suffix(".md")) {
                    prompts.insert(key.into(), (*text).into());
                }
            }
        }
    }
    prompts
}
