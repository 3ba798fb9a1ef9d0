//! Sources: a local directory, a git URL (`URL[@revision]`) or `pypi:NAME==VERSION`, turned
//! into a private checkout under the cache directory with a SWE-smith `repo_name`
//! (`owner__repo.<commit8>`). The user's directory is only ever read.
//!
//! A git URL, or a local directory that is the root of a clean work tree with an `origin`
//! remote, is named after the remote's last two path parts and the real `HEAD` commit, as
//! SWE-smith names it. Other local directories and sdists become a one-commit repository with a fixed author and time,
//! so the commit id is a content hash: the same files give the same `repo_name` everywhere.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::git;

/// A source could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source string is malformed.
    #[error("bad source `{0}`: {1}")]
    Spec(String, String),
    /// A file operation failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// A git operation failed.
    #[error(transparent)]
    Git(#[from] git::GitError),
    /// `pip download` failed.
    #[error("pip download {0} failed:\n{1}")]
    Pip(String, String),
}

/// What the user named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// A directory on this machine.
    Local(PathBuf),
    /// A git repository and an optional revision.
    Git {
        /// Clone URL or path.
        url: String,
        /// Commit, tag or branch.
        revision: Option<String>,
    },
    /// An sdist from the Python package index.
    Pypi {
        /// Distribution name.
        name: String,
        /// Exact version.
        version: String,
    },
}

impl SourceSpec {
    /// Parses a source string.
    pub fn parse(text: &str) -> Result<SourceSpec, SourceError> {
        if let Some(rest) = text.strip_prefix("pypi:") {
            let (name, version) = rest
                .split_once("==")
                .ok_or_else(|| SourceError::Spec(text.into(), "expected pypi:NAME==VERSION".into()))?;
            if name.is_empty() || version.is_empty() {
                return Err(SourceError::Spec(text.into(), "expected pypi:NAME==VERSION".into()));
            }
            return Ok(SourceSpec::Pypi { name: name.trim().into(), version: version.trim().into() });
        }
        let is_url = text.contains("://") || text.starts_with("git@") || text.ends_with(".git");
        if !is_url && Path::new(text).is_dir() {
            return Ok(SourceSpec::Local(PathBuf::from(text)));
        }
        if let Some((url, revision)) = text.rsplit_once('@')
            && !revision.contains(['/', ':'])
            && !url.is_empty()
        {
            return Ok(SourceSpec::Git { url: url.into(), revision: Some(revision.into()) });
        }
        if is_url || Path::new(text).join(".git").exists() {
            return Ok(SourceSpec::Git { url: text.into(), revision: None });
        }
        Err(SourceError::Spec(text.into(), "not a directory, a git URL or pypi:NAME==VERSION".into()))
    }
}

pub use crate::profile::Checkout;

/// The cache directory: `explicit`, else `$BUGSMITH_CACHE`, else `$XDG_CACHE_HOME/bugsmith`,
/// else `~/.cache/bugsmith`.
pub fn cache_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("BUGSMITH_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("bugsmith");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("bugsmith")
}

fn io(what: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> SourceError {
    let what = what.as_ref().display().to_string();
    move |e| SourceError::Io(what, e)
}

/// Fetches a source into a checkout under `cache`.
pub fn fetch(spec: &SourceSpec, cache: &Path) -> Result<Checkout, SourceError> {
    let checkouts = cache.join("checkouts");
    std::fs::create_dir_all(&checkouts).map_err(io(&checkouts))?;
    // Every stage of a run fetches the same source: a git URL or an sdist once per process is
    // enough (a local directory is copied each time: it may have changed), and a git URL whose
    // commit the remote names is not cloned again when its checkout exists.
    static FETCHED: std::sync::Mutex<Vec<(String, PathBuf, Checkout)>> = std::sync::Mutex::new(Vec::new());
    let memo_key = format!("{spec:?}");
    if let Some((_, _, checkout)) = FETCHED
        .lock()
        .ok()
        .and_then(|f| f.iter().find(|(k, c, _)| k == &memo_key && c == &checkouts).cloned())
        .filter(|(_, _, c)| c.root.is_dir())
    {
        return Ok(checkout);
    }
    if let SourceSpec::Git { url, revision } = spec
        && let Some(commit) = git::remote_commit(url, revision.as_deref())
    {
        let (owner, repo) = owner_and_repo(url);
        let repo_name = format!("{owner}__{repo}.{}", &commit[..8]);
        let root = checkouts.join(&repo_name);
        if git::head(&root).is_ok_and(|head| head == commit) {
            return Ok(Checkout { root, repo_name, owner, repo, commit });
        }
    }
    let checkout = fetch_now(spec, &checkouts, cache)?;
    if !matches!(spec, SourceSpec::Local(_))
        && let Ok(mut fetched) = FETCHED.lock()
    {
        fetched.push((memo_key, checkouts, checkout.clone()));
    }
    Ok(checkout)
}

fn fetch_now(spec: &SourceSpec, checkouts: &Path, cache: &Path) -> Result<Checkout, SourceError> {
    let staging = tempfile::Builder::new().prefix(".staging-").tempdir_in(checkouts).map_err(io(checkouts))?;
    let work = staging.path().join("repo");
    // A clean work tree with a remote is named like a clone of that remote, at its HEAD.
    let clean_origin = match spec {
        SourceSpec::Local(dir) => git::clean_origin(dir),
        _ => None,
    };
    let (owner, repo, commit) = match spec {
        SourceSpec::Local(dir) if let Some((url, head)) = &clean_origin => {
            let commit = git::clone(&dir.display().to_string(), &work, Some(head))?;
            let (owner, repo) = owner_and_repo(url);
            (owner, repo, commit)
        }
        SourceSpec::Local(dir) => {
            copy_tree(dir, &work)?;
            let commit = git::snapshot(&work, "bugsmith snapshot", false)?;
            let name = std::fs::canonicalize(dir)
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_string()))
                .unwrap_or_else(|| "repo".into());
            ("local".to_string(), sanitize(&name), commit)
        }
        SourceSpec::Git { url, revision } => {
            let commit = git::clone(url, &work, revision.as_deref())?;
            let (owner, repo) = owner_and_repo(url);
            (owner, repo, commit)
        }
        SourceSpec::Pypi { name, version } => {
            let archive = download_sdist(name, version, cache)?;
            unpack(&archive, &work)?;
            let commit = git::snapshot(&work, &format!("{name}=={version} (sdist)"), true)?;
            ("pypi".to_string(), sanitize(&name.to_lowercase()), commit)
        }
    };
    let repo_name = format!("{owner}__{repo}.{}", &commit[..8]);
    let root = checkouts.join(&repo_name);
    if !root.exists() && std::fs::rename(&work, &root).is_err() && !root.exists() {
        return Err(SourceError::Io(root.display().to_string(), std::io::Error::other("cannot move the checkout")));
    }
    Ok(Checkout { root, repo_name, owner, repo, commit })
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' }).collect()
}

/// `owner` and `repo` from the last two segments of a URL or path.
fn owner_and_repo(url: &str) -> (String, String) {
    let trimmed = url.trim_end_matches('/').trim_end_matches(".git");
    let mut parts = trimmed.rsplit(['/', ':']).filter(|p| !p.is_empty());
    let repo = parts.next().unwrap_or("repo");
    let owner = parts.next().unwrap_or("local");
    (sanitize(owner), sanitize(repo))
}

/// Copies a directory: in a git work tree, the files git would commit; elsewhere everything but
/// `.git`, virtual environments, `__pycache__` and `node_modules`.
fn copy_tree(from: &Path, to: &Path) -> Result<(), SourceError> {
    if let Some(files) = git::worktree_files(from) {
        for file in files {
            let target = to.join(&file);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            copy_entry(&from.join(&file), &target)?;
        }
        return Ok(());
    }
    let skipped = |e: &walkdir::DirEntry| {
        let name = e.file_name();
        e.file_type().is_dir()
            && (name == ".git"
                || name == "__pycache__"
                || name == "node_modules"
                || e.path().join("pyvenv.cfg").exists())
    };
    for entry in walkdir::WalkDir::new(from).follow_links(false).into_iter().filter_entry(|e| !skipped(e)) {
        let entry = entry.map_err(|e| SourceError::Io(from.display().to_string(), e.into()))?;
        let relative = entry.path().strip_prefix(from).unwrap_or(entry.path());
        let target = to.join(relative);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).map_err(io(&target))?;
        } else {
            copy_entry(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Copies a file, or recreates a symbolic link.
fn copy_entry(from: &Path, to: &Path) -> Result<(), SourceError> {
    if from.symlink_metadata().map_err(io(from))?.file_type().is_symlink() {
        let link = std::fs::read_link(from).map_err(io(from))?;
        std::os::unix::fs::symlink(link, to).map_err(io(to))?;
    } else {
        std::fs::copy(from, to).map_err(io(from))?;
    }
    Ok(())
}

/// Downloads an sdist with pip (cached under `cache/sdists/`); returns the archive's path.
fn download_sdist(name: &str, version: &str, cache: &Path) -> Result<PathBuf, SourceError> {
    let dir = cache.join("sdists").join(format!("{}-{version}", sanitize(name)));
    let find = |dir: &Path| -> Option<PathBuf> {
        let mut archives: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let n = p.to_string_lossy();
                n.ends_with(".tar.gz") || n.ends_with(".zip") || n.ends_with(".tgz")
            })
            .collect();
        archives.sort();
        archives.into_iter().next()
    };
    if let Some(found) = find(&dir) {
        return Ok(found);
    }
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let python = std::env::var("BUGSMITH_PYTHON").unwrap_or_else(|_| "python3".into());
    let requirement = format!("{name}=={version}");
    let output = Command::new(&python)
        .args(["-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps", "-d"])
        .arg(&dir)
        .arg(&requirement)
        .output()
        .map_err(|e| SourceError::Pip(requirement.clone(), format!("cannot run {python}: {e}")))?;
    match find(&dir) {
        Some(found) => Ok(found),
        None => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.trim().lines().rev().take(12).collect();
            Err(SourceError::Pip(requirement, tail.into_iter().rev().collect::<Vec<_>>().join("\n")))
        }
    }
}

/// Unpacks an sdist into `to`, dropping the single top-level folder sdists have.
fn unpack(archive: &Path, to: &Path) -> Result<(), SourceError> {
    let scratch = to.with_extension("unpack");
    std::fs::create_dir_all(&scratch).map_err(io(&scratch))?;
    let name = archive.to_string_lossy();
    if name.ends_with(".zip") {
        let status = Command::new("python3")
            .args(["-m", "zipfile", "-e"])
            .arg(archive)
            .arg(&scratch)
            .status()
            .map_err(io(archive))?;
        if !status.success() {
            return Err(SourceError::Io(name.to_string(), std::io::Error::other("cannot unzip")));
        }
    } else {
        let file = std::fs::File::open(archive).map_err(io(archive))?;
        tar::Archive::new(flate2::read::GzDecoder::new(file)).unpack(&scratch).map_err(io(archive))?;
    }
    let entries: Vec<PathBuf> =
        std::fs::read_dir(&scratch).map_err(io(&scratch))?.flatten().map(|e| e.path()).collect();
    let top = match entries.as_slice() {
        [only] if only.is_dir() => only.clone(),
        _ => scratch.clone(),
    };
    std::fs::rename(&top, to).map_err(io(to))?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_strings_parse_into_the_three_kinds() {
        assert_eq!(
            SourceSpec::parse("pypi:parse==1.20.2").unwrap(),
            SourceSpec::Pypi { name: "parse".into(), version: "1.20.2".into() }
        );
        assert_eq!(
            SourceSpec::parse("https://example.org/o/r.git@abc1234").unwrap(),
            SourceSpec::Git { url: "https://example.org/o/r.git".into(), revision: Some("abc1234".into()) }
        );
        assert_eq!(
            SourceSpec::parse("git@example.org:o/r.git").unwrap(),
            SourceSpec::Git { url: "git@example.org:o/r.git".into(), revision: None }
        );
        assert!(matches!(SourceSpec::parse("src").unwrap(), SourceSpec::Local(_)));
        assert!(SourceSpec::parse("pypi:parse").is_err());
        assert!(SourceSpec::parse("/no/such/dir").is_err());
    }

    #[test]
    fn owner_and_repo_come_from_the_last_two_url_segments() {
        assert_eq!(owner_and_repo("https://example.org/mewwts/addict.git"), ("mewwts".into(), "addict".into()));
        assert_eq!(owner_and_repo("git@example.org:o/r"), ("o".into(), "r".into()));
    }
}
