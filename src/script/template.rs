//! Issue templates: scripts under `strategies/issues/` with `fn render(instance, params, rng)`
//! returning the problem statement. Their prompts live in sibling files `<id>.<name>.md`, handed
//! to the script as `params.prompts.<name>`. The `lm::` namespace is registered for them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rhai::{AST, Array, Dynamic, Engine, EvalAltResult, ImmutableString, Map, Module, Position};

use super::{Origin, ScriptError, api::ScriptRng, call_hook, extend_deadline, origin_name, read_source};
use crate::lm::{LmClient, Message};
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
}

fn lm_error(message: String) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(Dynamic::from(message), Position::NONE))
}

fn chat(
    client: &Option<Arc<LmClient>>,
    messages: Vec<Message>,
    cost: &Arc<Mutex<f64>>,
) -> Result<String, Box<EvalAltResult>> {
    let client = client.as_ref().ok_or_else(|| {
        lm_error("no language model is configured (give the recipe an `lm:` section or --lm-model)".into())
    })?;
    let started = Instant::now();
    let reply = client.chat(&messages, None);
    extend_deadline(started.elapsed());
    let reply = reply.map_err(|e| lm_error(format!("lm::chat: {e}")))?;
    if let Ok(mut total) = cost.lock() {
        *total += reply.cost;
    }
    Ok(reply.content)
}

fn messages_from(array: &Array) -> Result<Vec<Message>, Box<EvalAltResult>> {
    array
        .iter()
        .map(|m| {
            let map = m
                .clone()
                .try_cast::<Map>()
                .ok_or_else(|| lm_error("lm::chat: each message is a map #{role, content}".into()))?;
            let field = |k: &str| map.get(k).and_then(|v| v.clone().into_string().ok()).unwrap_or_default();
            Ok(Message { role: field("role"), content: field("content") })
        })
        .collect()
}

/// The `lm::` namespace: `chat(messages)`, `chat(system, user)`, `render(template, vars)`.
fn lm_module(client: Option<Arc<LmClient>>, cost: Arc<Mutex<f64>>) -> Module {
    let mut module = Module::new();
    let (c1, k1) = (client.clone(), cost.clone());
    module.set_native_fn("chat", move |messages: Array| chat(&c1, messages_from(&messages)?, &k1));
    module.set_native_fn("chat", move |system: ImmutableString, user: ImmutableString| {
        let messages = vec![
            Message { role: "system".into(), content: system.to_string() },
            Message { role: "user".into(), content: user.to_string() },
        ];
        chat(&client, messages, &cost)
    });
    module.set_native_fn("render", |template: ImmutableString, vars: Map| {
        let vars: BTreeMap<String, String> = vars.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Ok(crate::lm::render(&template, &vars))
    });
    module
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
    pub fn load(
        origin: Origin,
        lm: Option<Arc<LmClient>>,
        cost: Arc<Mutex<f64>>,
    ) -> Result<IssueTemplate, ScriptError> {
        let path = origin_name(&origin);
        let id = super::catalog::origin_id(&origin);
        let source = read_source(&origin)?;
        let mut engine = super::engine();
        engine.register_static_module("lm", lm_module(lm, cost).into());
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
        let prompts = prompts_for(&origin, &id);
        Ok(IssueTemplate { id, engine, ast, source, path, prompts })
    }

    /// Renders one instance; the random stream comes from (seed, template, instance).
    pub fn render(
        &self,
        instance: Map,
        params: &Map,
        seed: u64,
        cost: &Arc<Mutex<f64>>,
    ) -> Result<Rendered, ScriptError> {
        let instance_id = instance.get("instance_id").map(ToString::to_string).unwrap_or_default();
        let rng = ScriptRng(Arc::new(Mutex::new(Rng::from_key(&[&seed.to_string(), &self.id, &instance_id]))));
        let mut params = params.clone();
        params.insert("prompts".into(), Dynamic::from_map(self.prompts.clone()));
        let before = cost.lock().map(|c| *c).unwrap_or(0.0);
        let value = call_hook(&self.engine, &self.ast, &self.source, &self.path, "render", (instance, params, rng))?;
        let text = value.into_string().map_err(|t| ScriptError {
            path: self.path.clone(),
            line: 0,
            column: 0,
            message: format!("render returned {t}, not a string"),
        })?;
        let after = cost.lock().map(|c| *c).unwrap_or(0.0);
        Ok(Rendered { text, cost: after - before })
    }
}

/// `<id>.<name>.md` files next to the script (or among the built-in copies), by name.
fn prompts_for(origin: &Origin, id: &str) -> Map {
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
