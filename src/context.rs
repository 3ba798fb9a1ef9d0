//! What every stage command shares: the script catalog, the cache, and the adapters they
//! open the same way (a profile and its checkout, a backend, a model client, the ledger), and
//! the stage layer's error type, which wraps the typed errors of the layers below with the
//! context the user needs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backend::docker::{DockerBackend, DockerHosts};
use crate::backend::local::LocalBackend;
use crate::backend::{Backend, BackendError, Containment};
use crate::lm::{LmClient, LmConfig, LmError, Usage};
use crate::profile::{Profile, ProfileError};
use crate::recipe::{Recipe, RecipeError};
use crate::script::ScriptError;
use crate::script::catalog::Catalog;
use crate::settings::BackendKind;
use crate::source::{self, Checkout, SourceError, SourceSpec};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A recipe could not be read.
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// A profile could not be read.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// A script failed to load or run.
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// A script that is not there.
    #[error(transparent)]
    NotFound(#[from] crate::script::catalog::NotFound),
    /// An instance or report file could not be read or written.
    #[error(transparent)]
    Record(#[from] crate::records::RecordError),
    /// GitHub could not be read.
    #[error(transparent)]
    Github(#[from] crate::github::GithubError),
    /// A source could not be fetched.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A repository operation failed.
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    /// A backend could not build or run.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A model could not be reached.
    #[error(transparent)]
    Lm(#[from] LmError),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Input that cannot work, said in words with what to do.
    #[error("{0}")]
    Usage(String),
    /// What ran could not give an answer (a baseline that timed out, a worker that would not
    /// start), with where its output is.
    #[error("{0}")]
    Run(String),
}

impl From<String> for Error {
    fn from(message: String) -> Error {
        Error::Usage(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Error {
        Error::Usage(message.to_string())
    }
}

/// An I/O error at `path`.
pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

/// A command's result: its exit code.
pub type Outcome = Result<u8, Error>;

/// Shared by every stage command of one invocation.
pub struct Context {
    /// Where scripts come from.
    pub catalog: Catalog,
    /// `--cache-dir`.
    pub cache: Option<PathBuf>,
    /// `--docker-host` (repeatable): the daemons the Docker backend uses; none: `DOCKER_HOST`
    /// or the local socket.
    pub docker_hosts: Vec<String>,
}

impl Context {
    /// The cache folder (checkouts, environments, model answers).
    pub fn cache_dir(&self) -> PathBuf {
        source::cache_dir(self.cache.as_deref())
    }

    /// Reads a profile.
    pub fn profile(&self, path: &Path) -> Result<Profile, Error> {
        Ok(Profile::load(path)?)
    }

    /// A recipe, or the empty one.
    pub fn recipe(&self, path: Option<&Path>) -> Result<Recipe, Error> {
        Ok(path.map(Recipe::load).transpose()?.unwrap_or_default())
    }

    /// Fetches a source (once per process; see `source::fetch`).
    pub fn fetch(&self, source: &str) -> Result<Checkout, Error> {
        Ok(source::fetch(&SourceSpec::parse(source)?, &self.cache_dir())?)
    }

    /// The profile's checkout, checked against the names the profile recorded.
    pub fn checkout(&self, profile: &Profile) -> Result<Checkout, Error> {
        let checkout = self.fetch(&profile.source)?;
        if checkout.repo_name != profile.repo_name {
            return Err(Error::Usage(format!(
                "the profile's source {} now gives {}, not {} as the profile says: run `bugsmith profile init` again",
                profile.source, checkout.repo_name, profile.repo_name
            )));
        }
        Ok(checkout)
    }

    /// A backend of `kind`.
    pub fn backend(&self, kind: BackendKind, containment: Containment) -> Result<Box<dyn Backend>, Error> {
        Ok(match kind {
            BackendKind::Local => Box::new(LocalBackend::new(&self.cache_dir()).with_containment(containment)),
            BackendKind::Docker => match self.docker_hosts.as_slice() {
                [] => Box::new(DockerBackend::connect(containment.limits)?),
                [one] => Box::new(DockerBackend::connect_to(Some(one), containment.limits)?),
                many => Box::new(DockerHosts::connect(many, &containment.limits)?),
            },
        })
    }

    /// A client for each Docker daemon (`--docker-host`, else the default one).
    pub fn docker_daemons(&self) -> Result<Vec<DockerBackend>, Error> {
        if self.docker_hosts.is_empty() {
            return Ok(vec![DockerBackend::connect(Default::default())?]);
        }
        Ok(self
            .docker_hosts
            .iter()
            .map(|h| DockerBackend::connect_to(Some(h), Default::default()))
            .collect::<Result<_, _>>()?)
    }

    /// A model client.
    pub fn lm(&self, config: LmConfig) -> Result<Arc<LmClient>, Error> {
        Ok(Arc::new(LmClient::new(config, self.cache_dir().join("lm"))?))
    }

    /// The catalog with `lm::chat` calling `lm`.
    pub fn catalog_with(&self, lm: &Arc<LmClient>) -> Catalog {
        self.catalog.clone_with_lm(Some(lm.clone()))
    }
}

/// Adds this run's token and cost counts to `<out>/lm_ledger.json`.
pub fn write_ledger(out: &Path, lm: &LmClient) -> Result<(), Error> {
    let path = out.join("lm_ledger.json");
    let mut total: std::collections::BTreeMap<String, Usage> =
        std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    for (model, usage) in lm.ledger() {
        let entry = total.entry(model).or_default();
        entry.calls += usage.calls;
        entry.cached += usage.cached;
        entry.prompt_tokens += usage.prompt_tokens;
        entry.completion_tokens += usage.completion_tokens;
        entry.cost += usage.cost;
    }
    if total.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let json = serde_json::to_string_pretty(&total).unwrap_or_default();
    crate::files::write_atomic(&path, json.as_bytes()).map_err(io(&path))
}

/// Prints a summary as JSON (`--json`) or with its own text form.
pub fn print_summary<T: serde::Serialize>(json: bool, summary: &T, text: impl FnOnce(&T)) {
    if json {
        println!("{}", serde_json::to_string_pretty(summary).unwrap_or_default());
    } else {
        text(summary);
    }
}

/// Profiles by `repo_name`: the given files, else `<out>/profiles/*.yaml` and the `profiles/`
/// folder beside the instances' `task_insts/`. Unreadable files are returned as problems.
pub fn find_profiles(explicit: &[PathBuf], out: &Path, instances: &Path) -> (BTreeMap<String, Profile>, Vec<String>) {
    let mut files: Vec<PathBuf> = explicit.to_vec();
    if files.is_empty() {
        let beside = instances.parent().and_then(Path::parent).map(|p| p.join("profiles"));
        for dir in [Some(out.join("profiles")), beside].into_iter().flatten() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            let mut found: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            found.sort();
            files.extend(found);
        }
    }
    let mut profiles = BTreeMap::new();
    let mut problems = Vec::new();
    for file in files {
        match Profile::load(&file) {
            Ok(profile) => {
                profiles.entry(profile.repo_name.clone()).or_insert(profile);
            }
            Err(e) if !explicit.is_empty() => problems.push(e.to_string()),
            Err(_) => {}
        }
    }
    (profiles, problems)
}
