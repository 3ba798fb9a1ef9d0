//! Finding scripts: the copies built into the binary, overlaid by id with the scripts of the
//! user's folders (`./strategies`, then `$BUGSMITH_STRATEGIES`, then `--strategies-dir`; a
//! file on disk is hot-reloadable), and resolving `--strategy` values (an id or a `.rhai` path).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::Engine;

use super::{Origin, ScriptError, Strategy};

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_strategies.rs"));
}

/// A script that is not there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotFound {
    /// A `.rhai` path that names no file.
    #[error("no such script file: {0}")]
    File(String),
    /// An id no layer has.
    #[error("unknown {kind} strategy `{id}` (known: {})", known.join(", "))]
    Id {
        /// The kind looked in.
        kind: String,
        /// The id asked for.
        id: String,
        /// The ids there are.
        known: Vec<String>,
    },
}

/// Where scripts come from.
pub struct Catalog {
    /// Folders overlaying the built-in scripts by id, lowest first.
    pub layers: Vec<PathBuf>,
    /// Whether the built-in copies are the bottom layer (`--no-builtin`: they are not).
    pub builtin: bool,
    engine: Arc<Engine>,
}

/// The kinds of script, each a folder under `strategies/`.
pub const KINDS: [&str; 5] = ["procedural", "lm", "combine", "mirror", "issues"];

impl Catalog {
    /// The built-in scripts (unless `no_builtin`) overlaid by `./strategies` (when it holds a
    /// kind's folder), then `$BUGSMITH_STRATEGIES`, then `explicit`.
    pub fn locate(explicit: Option<&Path>, no_builtin: bool) -> Catalog {
        let cwd = PathBuf::from("strategies");
        let mut layers = Vec::new();
        if KINDS.iter().any(|kind| cwd.join(kind).is_dir()) {
            layers.push(cwd);
        }
        layers.extend(std::env::var_os("BUGSMITH_STRATEGIES").map(PathBuf::from));
        layers.extend(explicit.map(Path::to_path_buf));
        layers.dedup();
        super::set_helper_layers(&layers);
        Catalog { layers, builtin: !no_builtin, engine: Arc::new(super::engine_with_lm(None)) }
    }

    /// The same catalog, its scripts given a language model for `lm::chat`.
    pub fn clone_with_lm(&self, lm: Option<Arc<crate::lm::LmClient>>) -> Catalog {
        Catalog { layers: self.layers.clone(), builtin: self.builtin, engine: Arc::new(super::engine_with_lm(lm)) }
    }

    /// Resolves an id among the procedural strategies, then the LM ones (or a `.rhai` path).
    pub fn resolve_strategy(&self, spec: &str) -> Result<Origin, NotFound> {
        self.resolve("procedural", spec).or_else(|first| self.resolve("lm", spec).map_err(|_| first))
    }

    /// The shared engine.
    pub fn engine(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    /// Scripts of one kind (`procedural`, …), sorted by id: a script of a higher layer replaces
    /// the one with its id below.
    pub fn origins(&self, kind: &str) -> Vec<Origin> {
        let mut by_id: std::collections::BTreeMap<String, Origin> = std::collections::BTreeMap::new();
        if self.builtin {
            by_id.extend(builtin_origins(kind).into_iter().map(|o| (origin_id(&o), o)));
        }
        for layer in &self.layers {
            let Ok(entries) = std::fs::read_dir(layer.join(kind)) else { continue };
            let mut files: Vec<PathBuf> =
                entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "rhai")).collect();
            files.sort();
            by_id.extend(files.into_iter().map(|path| (origin_id(&Origin::File(path.clone())), Origin::File(path))));
        }
        by_id.into_values().collect()
    }

    /// Resolves an id (looked up among the kind's scripts) or a path to a `.rhai` file.
    pub fn resolve(&self, kind: &str, spec: &str) -> Result<Origin, NotFound> {
        if spec.ends_with(".rhai") {
            let path = PathBuf::from(spec);
            return if path.is_file() { Ok(Origin::File(path)) } else { Err(NotFound::File(spec.to_string())) };
        }
        let origins = self.origins(kind);
        let known: Vec<String> = origins.iter().map(origin_id).collect();
        origins.into_iter().find(|o| origin_id(o) == spec).ok_or_else(|| NotFound::Id {
            kind: kind.to_string(),
            id: spec.to_string(),
            known,
        })
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

/// Where a script comes from, for listings: `built-in` or its path.
pub fn origin_source(origin: &Origin) -> String {
    match origin {
        Origin::File(path) => path.display().to_string(),
        Origin::Builtin(..) => "built-in".into(),
    }
}

/// Writes the built-in scripts (and their prompts and README) under `dir`, for editing; files
/// already there are left alone. Returns (written, kept).
pub fn export_builtin(dir: &Path) -> std::io::Result<(usize, usize)> {
    let (mut written, mut kept) = (0, 0);
    for (name, text) in builtin_files() {
        let path = dir.join(name);
        if path.exists() {
            kept += 1;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        written += 1;
    }
    Ok((written, kept))
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
