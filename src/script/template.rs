//! Issue templates: scripts under `strategies/issues/` with `fn render(instance, params, rng)`
//! returning the problem statement. Their prompts live in sibling files `<id>.<name>.md`, handed
//! to the script as `params.prompts.<name>`. The `lm::` namespace is registered for them.

use std::path::Path;
use std::sync::Arc;

use rhai::{Engine, Map};

use super::data::{self, InstanceData, Params};
use super::{Kind, Origin, Script, ScriptError};

/// A loaded issue template.
#[derive(Debug)]
pub struct IssueTemplate {
    script: Script,
    /// The model and temperature, for templates that call one.
    model: String,
}

impl std::ops::Deref for IssueTemplate {
    type Target = Script;
    fn deref(&self) -> &Script {
        &self.script
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
    /// Loads a template and its sibling prompt files; `model` names the model (and
    /// temperature) the engine's `lm::chat` calls, part of the fingerprint.
    pub fn load(engine: Arc<Engine>, origin: Origin, model: &str) -> Result<IssueTemplate, ScriptError> {
        let script = Script::open(engine, Kind::Issues, origin)?;
        let model = if script.calls_lm() { model.to_string() } else { String::new() };
        Ok(IssueTemplate { script, model })
    }

    /// A short hash of what shapes a statement besides the instance: the script, its prompts,
    /// `params` and the model it calls. Stored with each statement, so changing any re-renders.
    pub fn fingerprint(&self, params: &Params) -> String {
        crate::patch::hash8(&format!("{}\n{:?}\n{}", self.script.fingerprint(), params, self.model))
    }

    /// Renders one instance; the random stream comes from (seed, template, instance).
    pub fn render(&self, instance: &InstanceData, params: &Params, seed: u64) -> Result<Rendered, ScriptError> {
        let compiled = self.current();
        let rng = super::rng_for(&[&seed.to_string(), &self.id, &instance.instance_id]);
        super::lm_api::take_cost();
        let args = (data::to_script(instance), self.hook_params(&compiled, params), rng);
        let value = self.call(&compiled, args)?;
        let text = value.into_string().map_err(|t| self.returned(format!("{t}, not a string")))?;
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
