//! The Rhai host: the only module that names `rhai`. It builds the sandboxed engine and loads
//! every kind of script (procedural and LM strategies, combine, mirror, issue templates) the
//! same way: from disk with hot reload or from the copies built into the binary, their
//! constants read as metadata, their hook called with limits on operations, call depth,
//! memory and wall-clock time. What scripts see is typed (`data`, `api`). Errors name
//! `file:line:column`.

mod api;
pub mod catalog;
pub mod data;
pub mod lm_api;
pub mod memory;
pub mod repo;
pub mod template;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rhai::{AST, CallFnOptions, Dynamic, Engine, EvalAltResult, Map, ParseError, Position, Scope};

use crate::ast::{SourceFile, tag_bit};
use crate::patch::Edit;
use crate::rng::Rng;

/// Operation limit for one hook call.
const MAX_OPERATIONS: u64 = 5_000_000;

/// Wall-clock limit for one hook call.
const CALL_TIME_LIMIT: Duration = Duration::from_secs(2);

/// Memory one hook call may build up (everything its thread allocates and keeps).
pub const CALL_MEMORY_LIMIT: i64 = 512 << 20;

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// The thread's allocated bytes when the hook call began.
    static MEMORY_AT_START: Cell<i64> = const { Cell::new(0) };
    /// The thread's allocated bytes when the clock was last read.
    static LAST_CLOCK_BYTES: Cell<i64> = const { Cell::new(0) };
}

/// Starts the wall-clock and memory limits of a hook call on this thread.
fn start_limits(time: Duration) {
    DEADLINE.with(|d| d.set(Some(Instant::now() + time)));
    MEMORY_AT_START.with(|m| m.set(memory::thread_bytes()));
    LAST_CLOCK_BYTES.with(|m| m.set(memory::thread_bytes()));
}

fn end_limits() {
    DEADLINE.with(|d| d.set(None));
}

/// A script failed to compile or to run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}:{column}: {message}")]
pub struct ScriptError {
    /// The script's path (or its built-in name).
    pub path: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// What went wrong.
    pub message: String,
}

impl ScriptError {
    fn at(path: &str, position: Position, message: String) -> ScriptError {
        ScriptError {
            path: path.to_string(),
            line: position.line().unwrap_or(0),
            column: position.position().unwrap_or(0),
            message,
        }
    }

    fn from_parse(path: &str, error: &ParseError) -> ScriptError {
        ScriptError::at(path, error.1, error.0.to_string())
    }

    /// `source` is the script's text and `hook` the function called, used to point at the
    /// function when the engine gives no position (as for operation and time limits).
    fn from_eval(path: &str, error: &EvalAltResult, source: &str, hook: &str) -> ScriptError {
        // Report the innermost position: the line inside the function that failed.
        let mut inner = error;
        let mut position = error.position();
        let mut function = hook.to_string();
        while let EvalAltResult::ErrorInFunctionCall(name, _, next, pos) = inner {
            if !pos.is_none() {
                position = *pos;
            }
            function.clone_from(name);
            inner = next;
            if !inner.position().is_none() {
                position = inner.position();
            }
        }
        if position.is_none() {
            let definition = format!("fn {function}(");
            if let Some(line) = source.lines().position(|l| l.trim_start().starts_with(&definition)) {
                let column = source.lines().nth(line).map_or(0, |l| l.len() - l.trim_start().len());
                position = Position::new(line as u16 + 1, column as u16 + 1);
            }
        }
        let message = match inner {
            EvalAltResult::ErrorTerminated(token, _) if token.to_string() == "memory" => {
                format!("script built more than {} MiB of values and was stopped", CALL_MEMORY_LIMIT >> 20)
            }
            EvalAltResult::ErrorTerminated(..) => {
                format!("script ran longer than {} s and was stopped", CALL_TIME_LIMIT.as_secs())
            }
            EvalAltResult::ErrorTooManyOperations(..) => {
                format!("script exceeded {MAX_OPERATIONS} operations and was stopped (an endless loop?)")
            }
            EvalAltResult::ErrorRuntime(value, _) => value.to_string(),
            other => {
                let text = other.to_string();
                text.rfind(" (line ").map_or(text.clone(), |at| text[..at].to_string())
            }
        };
        ScriptError::at(path, position, message)
    }
}

/// The `lib/` folders scripts import shared helpers from (`import "name" as h;`), lowest layer
/// first; set by the catalog. The built-in `lib/` is always below them.
static HELPER_LAYERS: std::sync::RwLock<Vec<std::path::PathBuf>> = std::sync::RwLock::new(Vec::new());

/// Sets the folders whose `lib/` holds importable helpers (the catalog's layers).
pub fn set_helper_layers(layers: &[std::path::PathBuf]) {
    if let Ok(mut slot) = HELPER_LAYERS.write() {
        *slot = layers.to_vec();
    }
}

/// Resolves `import "name"` to `lib/name.rhai` of the highest layer that has it, else the
/// built-in copy; nothing else can be imported (no paths, no other folders).
struct HelperResolver;

impl rhai::ModuleResolver for HelperResolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        position: Position,
    ) -> Result<rhai::Shared<rhai::Module>, Box<EvalAltResult>> {
        let not_found = || Box::new(EvalAltResult::ErrorModuleNotFound(path.to_string(), position));
        if path.is_empty() || !path.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(not_found());
        }
        let file = format!("lib/{path}.rhai");
        let on_disk = HELPER_LAYERS
            .read()
            .ok()
            .and_then(|layers| layers.iter().rev().find_map(|layer| std::fs::read_to_string(layer.join(&file)).ok()));
        let text = on_disk
            .or_else(|| catalog::builtin_files().iter().find(|(name, _)| *name == file).map(|(_, t)| (*t).to_string()))
            .ok_or_else(not_found)?;
        let mut ast = engine
            .compile(&text)
            .map_err(|e| Box::new(EvalAltResult::ErrorInModule(path.to_string(), e.into(), position)))?;
        ast.set_source(file.as_str());
        let module = rhai::Module::eval_ast_as_new(Scope::new(), &ast, engine)?;
        Ok(module.into())
    }
}

/// Builds the sandboxed engine shared by every script.
pub fn engine() -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(64)
        .set_max_expr_depths(128, 64)
        .set_max_string_size(16 << 20)
        .set_max_array_size(1_000_000)
        .set_max_map_size(100_000)
        .set_max_variables(10_000)
        .set_max_functions(1_000)
        .set_max_modules(16)
        .set_strict_variables(true);
    engine.disable_symbol("eval");
    engine.set_module_resolver(HelperResolver);
    engine.on_print(|text| eprintln!("{text}"));
    engine.on_debug(|text, source, position| eprintln!("{}:{position}: {text}", source.unwrap_or("script")));
    // Memory at every operation (one can build a large value); see below for the clock.
    engine.on_progress(|operations| {
        let deadline = DEADLINE.with(Cell::get)?;
        let bytes = memory::thread_bytes();
        if bytes - MEMORY_AT_START.with(Cell::get) > CALL_MEMORY_LIMIT {
            return Some(Dynamic::from("memory"));
        }
        // The clock every 64 operations, and after any operation that allocated a megabyte or
        // more (the slow ones: an operation that builds little is fast).
        let grew = bytes - LAST_CLOCK_BYTES.with(Cell::get) > 1 << 20;
        if operations % 64 != 0 && !grew {
            return None;
        }
        LAST_CLOCK_BYTES.with(|b| b.set(bytes));
        (Instant::now() > deadline).then(|| Dynamic::from("timeout"))
    });
    api::register(&mut engine);
    repo::register(&mut engine);
    engine
}

/// [`engine`] with the `lm::` namespace around a client (or none: calls then fail clearly).
pub fn engine_with_lm(lm: Option<Arc<crate::lm::LmClient>>) -> Engine {
    let mut engine = engine();
    engine.register_static_module("lm", lm_api::module(lm).into());
    engine
}

/// The kinds of script, each a folder under `strategies/`, and the hook each must define.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `procedural/`: `fn mutate(entity, params, rng)`.
    Procedural,
    /// `lm/`: the same hook, with a language model.
    Lm,
    /// `combine/`: `fn combine(candidates, params, rng, repo)`.
    Combine,
    /// `mirror/`: `fn mirror(change, params, rng, repo)`.
    Mirror,
    /// `issues/`: `fn render(instance, params, rng)`.
    Issues,
}

impl Kind {
    /// Every kind, in pipeline order.
    pub const ALL: [Kind; 5] = [Kind::Procedural, Kind::Lm, Kind::Combine, Kind::Mirror, Kind::Issues];

    /// The folder under `strategies/`.
    pub fn folder(self) -> &'static str {
        match self {
            Kind::Procedural => "procedural",
            Kind::Lm => "lm",
            Kind::Combine => "combine",
            Kind::Mirror => "mirror",
            Kind::Issues => "issues",
        }
    }

    /// The kind whose folder is `name`.
    pub fn from_folder(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.folder() == name)
    }

    /// The hook's name and parameters.
    fn hook(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Kind::Procedural | Kind::Lm => ("mutate", &["entity", "params", "rng"]),
            Kind::Combine => ("combine", &["candidates", "params", "rng", "repo"]),
            Kind::Mirror => ("mirror", &["change", "params", "rng", "repo"]),
            Kind::Issues => ("render", &["instance", "params", "rng"]),
        }
    }

    fn is_strategy(self) -> bool {
        matches!(self, Kind::Procedural | Kind::Lm)
    }

    /// Repository-level scripts merge or rewrite many patches, so they get longer than
    /// per-entity hooks.
    fn time_limit(self) -> Duration {
        match self {
            Kind::Combine | Kind::Mirror => Duration::from_secs(600),
            _ => CALL_TIME_LIMIT,
        }
    }
}

/// Every function the engine offers scripts, as (owner, name): the owner is a registered
/// type (`Entity`, `Node`, …) for its properties and methods, or a namespace (`patch`, `ast`,
/// `lm`) for its functions. Operators, indexers and `to_string` are left out. For checking
/// `strategies/README.md` against what exists.
pub fn api_members() -> Vec<(String, String)> {
    let engine = engine_with_lm(None);
    let mut members = std::collections::BTreeSet::new();
    for signature in engine.gen_fn_signatures(false) {
        let Some((head, rest)) = signature.split_once('(') else { continue };
        let (namespace, name) = match head.rsplit_once("::") {
            Some((namespace, name)) => (Some(namespace), name),
            None => (None, head),
        };
        let name = name.strip_prefix("get$").or_else(|| name.strip_prefix("set$")).unwrap_or(name);
        if name.starts_with("index$") || name == "to_string" || !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue;
        }
        let owner = match namespace {
            Some(namespace) => namespace.to_string(),
            None => {
                let first = rest.split([',', ')']).next().unwrap_or("");
                first.split_once(':').map_or(first, |(_, t)| t).trim().trim_start_matches("&mut ").to_string()
            }
        };
        members.insert((owner, name.to_string()));
    }
    members.into_iter().collect()
}

/// What a strategy declares with top-level constants.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meta {
    /// `EXPLANATION`: written into each candidate's metadata.
    pub explanation: String,
    /// `CONDITIONS`: tags an entity must all have.
    pub conditions: Vec<String>,
    /// `LIKELIHOOD`: default per-node flip probability (0.2 when absent).
    pub likelihood: f64,
    /// `MIN_COMPLEXITY` (3 when absent).
    pub min_complexity: i64,
    /// `MAX_COMPLEXITY` (none when absent).
    pub max_complexity: Option<i64>,
    /// `MAX_ATTEMPTS`: calls of `mutate` per entity until one changes the code (5 when absent).
    pub max_attempts: i64,
    /// Bits of `conditions`.
    pub condition_bits: u32,
    /// Whether the script defines `applies_to(entity, params)`.
    pub has_applies_to: bool,
}

struct Compiled {
    ast: AST,
    source: String,
    /// Top-level constants (`DESCRIPTION`, `EXPLANATION`, …), by name.
    constants: Map,
    /// The strategy constants, read (for the strategy kinds) or defaulted.
    meta: Meta,
    /// Sibling `<id>.<name>.md` files, handed to hooks as `params.prompts`.
    prompts: Map,
}

/// Where a script's text comes from.
#[derive(Clone, Debug)]
pub enum Origin {
    /// A file on disk, reloaded when it changes.
    File(PathBuf),
    /// A copy built into the binary, named by its path under `strategies/`.
    Builtin(&'static str, &'static str),
}

/// A loaded script of any kind, with the same limits, hot reload, error locations and
/// metadata for all. Its id is the file stem.
pub struct Script {
    /// The id (file stem), used in file names and instance ids.
    pub id: String,
    /// Where the text comes from.
    pub origin: Origin,
    /// What it is.
    pub kind: Kind,
    engine: Arc<Engine>,
    compiled: RwLock<Arc<Compiled>>,
    /// Hash of the file when it was last compiled.
    stamp: Mutex<Option<String>>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script").field("id", &self.id).field("origin", &self.display_path()).finish()
    }
}

/// What tells a changed file: a hash of its contents (timestamps are too coarse for an editor
/// that saves twice in a few milliseconds).
fn stamp(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|text| crate::patch::hash8(&text))
}

impl Script {
    /// Loads and checks a script of `kind`.
    pub fn open(engine: Arc<Engine>, kind: Kind, origin: Origin) -> Result<Script, ScriptError> {
        let stamp = match &origin {
            Origin::File(path) => stamp(path),
            Origin::Builtin(..) => None,
        };
        let compiled = compile(&engine, kind, &origin)?;
        Ok(Script {
            id: catalog::origin_id(&origin),
            origin,
            kind,
            engine,
            compiled: RwLock::new(Arc::new(compiled)),
            stamp: Mutex::new(stamp),
        })
    }

    /// The script's path for messages.
    pub fn display_path(&self) -> String {
        origin_name(&self.origin)
    }

    /// Recompiles the script if its file changed since it was last compiled. A failed
    /// recompile keeps the previous version and is returned; the file is tried again on the
    /// next call. Callers refresh between runs, never in the middle of one, so everything a
    /// run makes comes from one version of the script.
    pub fn refresh(&self) -> Option<ScriptError> {
        let Origin::File(path) = &self.origin else { return None };
        let mut state = self.stamp.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let stamp = stamp(path);
        if stamp == *state {
            return None;
        }
        match compile(&self.engine, self.kind, &self.origin) {
            Ok(compiled) => {
                *self.compiled.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(compiled);
                *state = stamp;
                None
            }
            Err(error) => Some(error),
        }
    }

    fn current(&self) -> Arc<Compiled> {
        self.compiled.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Its one-line description: `DESCRIPTION`, else `EXPLANATION`.
    pub fn description(&self) -> String {
        let compiled = self.current();
        ["DESCRIPTION", "EXPLANATION"]
            .iter()
            .find_map(|key| compiled.constants.get(*key).and_then(|v| v.clone().into_string().ok()))
            .unwrap_or_default()
    }

    /// The names of its top-level constants.
    pub fn constant_names(&self) -> Vec<String> {
        self.current().constants.keys().map(ToString::to_string).collect()
    }

    /// A short hash of its text and prompts: what a stage's results depend on.
    pub fn fingerprint(&self) -> String {
        let compiled = self.current();
        crate::patch::hash8(&format!("{}\n{:?}", compiled.source, compiled.prompts))
    }

    /// Whether it calls a language model.
    pub fn calls_lm(&self) -> bool {
        self.current().source.contains("lm::")
    }

    /// `params` as the hook sees them: `extra` with the script's prompts.
    fn hook_params(&self, compiled: &Compiled, extra: &data::Params) -> Map {
        let mut params = data::to_script(extra).try_cast::<Map>().unwrap_or_default();
        params.insert("prompts".into(), Dynamic::from_map(compiled.prompts.clone()));
        params
    }

    fn call(&self, compiled: &Compiled, args: impl rhai::FuncArgs) -> Result<Dynamic, ScriptError> {
        let (hook, _) = self.kind.hook();
        let path = self.display_path();
        let mut scope = Scope::new();
        // Evaluating the top level each call is what makes `global::CONSTANT` visible in hooks.
        let options = CallFnOptions::new().eval_ast(true).rewind_scope(true);
        start_limits(self.kind.time_limit());
        let result = self.engine.call_fn_with_options::<Dynamic>(options, &mut scope, &compiled.ast, hook, args);
        end_limits();
        result.map_err(|e| ScriptError::from_eval(&path, &e, &compiled.source, hook))
    }

    /// An error about what the hook returned.
    fn returned(&self, message: String) -> ScriptError {
        let (hook, _) = self.kind.hook();
        ScriptError { path: self.display_path(), line: 0, column: 0, message: format!("{hook} returned {message}") }
    }
}

/// A random stream for one call, from its key.
fn rng_for(key: &[&str]) -> api::ScriptRng {
    api::ScriptRng(Arc::new(Mutex::new(Rng::from_key(key))))
}

/// A procedural or LM strategy.
#[derive(Debug)]
pub struct Strategy(Script);

impl std::ops::Deref for Strategy {
    type Target = Script;
    fn deref(&self) -> &Script {
        &self.0
    }
}

/// The params a strategy's hooks get: its constants under the recipe's values.
#[derive(Clone, Debug)]
pub struct HookParams(Map);

impl HookParams {
    /// An integer param.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.0.get(key).and_then(|v| v.as_int().ok())
    }
}

impl Strategy {
    /// Loads and checks a strategy (an LM one when it lives in `lm/`).
    pub fn load(engine: Arc<Engine>, origin: Origin) -> Result<Strategy, ScriptError> {
        let kind = if catalog::is_lm(&origin) { Kind::Lm } else { Kind::Procedural };
        Script::open(engine, kind, origin).map(Strategy)
    }

    /// A script path for messages, before it is loaded.
    pub fn origin_path(origin: &Origin) -> String {
        origin_name(origin)
    }

    /// The script's metadata (current version).
    pub fn meta(&self) -> Meta {
        self.current().meta.clone()
    }

    /// The `EXPLANATION` constant (current version).
    pub fn explanation(&self) -> String {
        self.current().meta.explanation.clone()
    }

    /// The params a hook receives: the metadata defaults, overridden by `overrides`.
    pub fn params(&self, overrides: &data::Params) -> HookParams {
        let compiled = self.current();
        let meta = &compiled.meta;
        let mut params = data::Params::default();
        params.set("likelihood", meta.likelihood);
        params.set("min_complexity", meta.min_complexity);
        params.set("max_complexity", meta.max_complexity);
        params.set("max_attempts", meta.max_attempts);
        params.0.extend(overrides.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        HookParams(self.hook_params(&compiled, &params))
    }

    /// Whether the entity passes the strategy's conditions, complexity bounds (from `params`)
    /// and `applies_to` hook.
    pub fn applies_to(&self, file: &SourceFile, index: usize, params: &HookParams) -> Result<bool, ScriptError> {
        let compiled = self.current();
        let entity = &file.entities()[index];
        let min = params.int("min_complexity").unwrap_or(compiled.meta.min_complexity);
        let max = params.int("max_complexity").or(compiled.meta.max_complexity).unwrap_or(i64::MAX);
        if entity.tags & compiled.meta.condition_bits != compiled.meta.condition_bits
            || entity.complexity < min
            || entity.complexity > max
        {
            return Ok(false);
        }
        if !compiled.meta.has_applies_to {
            return Ok(true);
        }
        let args = (api::ScriptEntity { file: file.clone(), index }, params.0.clone());
        let path = self.display_path();
        let options = CallFnOptions::new().eval_ast(true).rewind_scope(true);
        start_limits(CALL_TIME_LIMIT);
        let result =
            self.engine.call_fn_with_options::<Dynamic>(options, &mut Scope::new(), &compiled.ast, "applies_to", args);
        end_limits();
        let value = result.map_err(|e| ScriptError::from_eval(&path, &e, &compiled.source, "applies_to"))?;
        Ok(value.as_bool().unwrap_or(false))
    }

    /// Calls `mutate(entity, params, rng)` and converts its result to edits.
    pub fn mutate(
        &self,
        file: &SourceFile,
        index: usize,
        params: &HookParams,
        rng: &Arc<Mutex<Rng>>,
    ) -> Result<Vec<Edit>, ScriptError> {
        let compiled = self.current();
        let args = (api::ScriptEntity { file: file.clone(), index }, params.0.clone(), api::ScriptRng(rng.clone()));
        let value = self.call(&compiled, args)?;
        api::edits_from(value).map_err(|message| self.returned(message))
    }
}

/// Extends the wall-clock limit of the call in progress: time spent waiting in a native call
/// (a language model) does not count against the script.
pub(crate) fn extend_deadline(by: Duration) {
    DEADLINE.with(|d| d.set(d.get().map(|deadline| deadline + by)));
}

/// Reads a script's text.
fn read_source(origin: &Origin) -> Result<String, ScriptError> {
    let name = origin_name(origin);
    match origin {
        Origin::File(path) => std::fs::read_to_string(path).map_err(|e| ScriptError {
            path: name,
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        }),
        Origin::Builtin(_, text) => Ok((*text).to_string()),
    }
}

fn origin_name(origin: &Origin) -> String {
    match origin {
        Origin::File(path) => path.display().to_string(),
        Origin::Builtin(name, _) => format!("<builtin>/{name}"),
    }
}

fn compile(engine: &Engine, kind: Kind, origin: &Origin) -> Result<Compiled, ScriptError> {
    let name = origin_name(origin);
    let error = |message: String| ScriptError { path: name.clone(), line: 0, column: 0, message };
    let id = catalog::origin_id(origin);
    if id.contains('.') || id.is_empty() {
        // Instance ids are `<repo_name>.<strategy>__<hash>` and prompts `<id>.<name>.md`: a
        // dot would make them ambiguous.
        return Err(error(format!("a script id may not contain `.` (`{id}`); rename the file")));
    }
    let text = read_source(origin)?;
    let mut ast = engine.compile(&text).map_err(|e| ScriptError::from_parse(&name, &e))?;
    ast.set_source(name.as_str());
    let (hook, parameters) = kind.hook();
    let has_fn = |f: &str, arity: usize| ast.iter_functions().any(|m| m.name == f && m.params.len() == arity);
    if !has_fn(hook, parameters.len()) {
        let what = if kind.is_strategy() { "a strategy" } else { "this script" };
        return Err(error(format!("{what} must define `fn {hook}({})`", parameters.join(", "))));
    }
    // Top-level statements only declare constants; run them once to read the values.
    let mut scope = Scope::new();
    start_limits(CALL_TIME_LIMIT);
    let run = engine.run_ast_with_scope(&mut scope, &ast);
    end_limits();
    run.map_err(|e| ScriptError::from_eval(&name, &e, &text, ""))?;
    let constants: Map = scope.iter_raw().map(|(k, _, v)| (k.into(), v.clone())).collect();
    let meta =
        if kind.is_strategy() { read_meta(&constants, &error)? } else { Meta { max_attempts: 1, ..Meta::default() } };
    Ok(Compiled {
        meta: Meta { has_applies_to: has_fn("applies_to", 2), ..meta },
        ast,
        source: text,
        constants,
        prompts: template::prompts_for(origin),
    })
}

fn read_meta(constants: &Map, error: &dyn Fn(String) -> ScriptError) -> Result<Meta, ScriptError> {
    let explanation = constants
        .get("EXPLANATION")
        .and_then(|v| v.clone().into_string().ok())
        .ok_or_else(|| error("a strategy must declare `const EXPLANATION = \"…\";`".into()))?;
    let conditions: Vec<String> = match constants.get("CONDITIONS") {
        None => Vec::new(),
        Some(value) => value
            .clone()
            .into_array()
            .map_err(|_| error("CONDITIONS must be an array of tag names".into()))?
            .into_iter()
            .map(|v| v.into_string().map_err(|_| error("CONDITIONS must be an array of tag names".into())))
            .collect::<Result<_, _>>()?,
    };
    let mut condition_bits = 0;
    for c in &conditions {
        condition_bits |= tag_bit(c).ok_or_else(|| error(format!("CONDITIONS: unknown tag `{c}`")))?;
    }
    let number =
        |key: &str| constants.get(key).and_then(|v| v.as_float().ok().or_else(|| v.as_int().ok().map(|i| i as f64)));
    let int = |key: &str| constants.get(key).and_then(|v| v.as_int().ok());
    let likelihood = number("LIKELIHOOD").unwrap_or(0.2);
    if !(0.0..=1.0).contains(&likelihood) {
        return Err(error(format!("LIKELIHOOD must be between 0 and 1, not {likelihood}")));
    }
    Ok(Meta {
        explanation,
        conditions,
        likelihood,
        min_complexity: int("MIN_COMPLEXITY").unwrap_or(3),
        max_complexity: int("MAX_COMPLEXITY"),
        max_attempts: int("MAX_ATTEMPTS").unwrap_or(5).max(1),
        condition_bits,
        has_applies_to: false,
    })
}
