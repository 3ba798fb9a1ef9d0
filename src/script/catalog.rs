//! Finding strategy scripts: a `strategies/` directory on disk (hot-reloadable) or the copies
//! built into the binary, and resolving `--strategy` values (an id or a `.rhai` path).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::Engine;

use super::{Origin, ScriptError, Strategy};

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_strategies.rs"));
}

/// Where strategies come from.
pub struct Catalog {
    /// The `strategies/` directory in use, or `None` for the built-in copies.
    pub root: Option<PathBuf>,
    engine: Arc<Engine>,
}

impl Catalog {
    /// Uses `explicit`, else `$BUGSMITH_STRATEGIES`, else `./strategies` when it exists, else
    /// the built-in scripts.
    pub fn locate(explicit: Option<&Path>) -> Catalog {
        let root = explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("BUGSMITH_STRATEGIES").map(PathBuf::from))
            .or_else(|| Some(PathBuf::from("strategies")).filter(|p| p.join("procedural").is_dir()));
        Catalog { root, engine: Arc::new(super::engine_with_lm(None)) }
    }

    /// The same catalog, its scripts given a language model for `lm::chat`.
    pub fn clone_with_lm(&self, lm: Option<Arc<crate::lm::LmClient>>) -> Catalog {
        Catalog { root: self.root.clone(), engine: Arc::new(super::engine_with_lm(lm)) }
    }

    /// Resolves an id among the procedural strategies, then the LM ones (or a `.rhai` path).
    pub fn resolve_strategy(&self, spec: &str) -> Result<Origin, String> {
        self.resolve("procedural", spec).or_else(|first| self.resolve("lm", spec).map_err(|_| first))
    }

    /// The shared engine.
    pub fn engine(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    /// Scripts of one kind (`procedural`, …), sorted by id.
    pub fn origins(&self, kind: &str) -> Vec<Origin> {
        let mut origins: Vec<Origin> = match &self.root {
            Some(root) => std::fs::read_dir(root.join(kind))
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
                        .map(Origin::File)
                        .collect()
                })
                .unwrap_or_default(),
            None => builtin_origins(kind),
        };
        origins.sort_by_key(origin_id);
        origins
    }

    /// Resolves an id (looked up among the kind's scripts) or a path to a `.rhai` file.
    pub fn resolve(&self, kind: &str, spec: &str) -> Result<Origin, String> {
        if spec.ends_with(".rhai") {
            let path = PathBuf::from(spec);
            return if path.is_file() { Ok(Origin::File(path)) } else { Err(format!("no such script file: {spec}")) };
        }
        let origins = self.origins(kind);
        let known: Vec<String> = origins.iter().map(origin_id).collect();
        origins
            .into_iter()
            .find(|o| origin_id(o) == spec)
            .ok_or_else(|| format!("unknown {kind} strategy `{spec}` (known: {})", known.join(", ")))
    }

    /// Loads scripts; the ones that fail are returned as errors.
    pub fn load(&self, origins: Vec<Origin>) -> (Vec<Strategy>, Vec<ScriptError>) {
        let mut loaded = Vec::new();
        let mut errors = Vec::new();
        for origin in origins {
            match Strategy::load(self.engine(), origin) {
                Ok(s) => loaded.push(s),
                Err(e) => errors.push(e),
            }
        }
        (loaded, errors)
    }
}

/// The built-in copies of one kind's scripts, sorted by id.
pub fn builtin_origins(kind: &str) -> Vec<Origin> {
    let prefix = format!("{kind}/");
    let mut origins: Vec<Origin> = builtin::BUILTIN
        .iter()
        .filter(|(name, _)| name.starts_with(&prefix) && name.ends_with(".rhai"))
        .map(|(name, text)| Origin::Builtin(name, text))
        .collect();
    origins.sort_by_key(origin_id);
    origins
}

/// Every file built into the binary: (path under `strategies/`, text).
pub fn builtin_files() -> &'static [(&'static str, &'static str)] {
    builtin::BUILTIN
}

/// Whether a script is an LM strategy (it lives in `lm/`).
pub fn is_lm(origin: &Origin) -> bool {
    match origin {
        Origin::File(path) => path.parent().is_some_and(|d| d.ends_with("lm")),
        Origin::Builtin(name, _) => name.starts_with("lm/"),
    }
}

/// The id (file stem) of a script.
pub fn origin_id(origin: &Origin) -> String {
    let path = match origin {
        Origin::File(path) => path.as_path(),
        Origin::Builtin(name, _) => Path::new(name),
    };
    path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default()
}
