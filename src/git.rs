//! Git, the only module that names `git2` (and the `git` program, used only to clone over a
//! network, which this build of libgit2 does not speak).

use std::path::Path;
use std::process::Command;

use git2::{IndexAddOption, Repository, Signature, Time};

/// A git operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// libgit2 reported an error.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// The `git` program failed.
    #[error("git {command} failed: {output}")]
    Program {
        /// The sub-command run.
        command: String,
        /// Its stderr.
        output: String,
    },
}

/// Commits every file of `dir` as one commit with a fixed author and time, so the commit id is
/// a content hash of the tree. `.gitignore` is honoured unless `everything` (an sdist ships
/// generated files its own `.gitignore` names). Returns the commit id.
pub fn snapshot(dir: &Path, message: &str, everything: bool) -> Result<String, GitError> {
    let repo = Repository::init(dir)?;
    let mut index = repo.index()?;
    let option = if everything { IndexAddOption::FORCE } else { IndexAddOption::DEFAULT };
    index.add_all(["*"], option, None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let signature = Signature::new("bugsmith", "bugsmith@localhost", &Time::new(0, 0))?;
    let commit = repo.commit(Some("HEAD"), &signature, &signature, message, &tree, &[])?;
    Ok(commit.to_string())
}

/// Clones `url` into `dest` and checks out `revision` (default: the remote's HEAD). Returns
/// the checked-out commit id.
pub fn clone(url: &str, dest: &Path, revision: Option<&str>) -> Result<String, GitError> {
    let local = !url.contains("://") || url.starts_with("file://");
    let repo = if local && !url.contains('@') {
        Repository::clone(url, dest)?
    } else {
        let output = Command::new("git")
            .args(["clone", "--quiet", url])
            .arg(dest)
            .output()
            .map_err(|e| GitError::Program { command: "clone".into(), output: e.to_string() })?;
        if !output.status.success() {
            return Err(GitError::Program {
                command: format!("clone {url}"),
                output: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Repository::open(dest)?
    };
    if let Some(revision) = revision {
        // A branch other than the default one exists only as `origin/<name>` after a clone.
        let object = repo.revparse_single(revision).or_else(|_| repo.revparse_single(&format!("origin/{revision}")))?;
        let commit = object.peel_to_commit()?;
        repo.checkout_tree(commit.as_object(), Some(git2::build::CheckoutBuilder::new().force()))?;
        repo.set_head_detached(commit.id())?;
    }
    let head = repo.head()?.peel_to_commit()?.id();
    Ok(head.to_string())
}

/// The id of `HEAD` in the repository at `dir`.
pub fn head(dir: &Path) -> Result<String, GitError> {
    Ok(Repository::open(dir)?.head()?.peel_to_commit()?.id().to_string())
}

/// Paths of the files committed at `HEAD`, sorted, with forward slashes.
pub fn tracked_files(dir: &Path) -> Result<Vec<String>, GitError> {
    let repo = Repository::open(dir)?;
    let tree = repo.head()?.peel_to_tree()?;
    let mut files = Vec::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |root, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob) {
            files.push(format!("{root}{}", entry.name().unwrap_or("")));
        }
        git2::TreeWalkResult::Ok
    })?;
    files.sort();
    Ok(files)
}

/// The files of a git work tree that git would commit (tracked, plus untracked files that are
/// not ignored), or `None` when `dir` is not the top of a work tree.
pub fn worktree_files(dir: &Path) -> Option<Vec<String>> {
    let repo = Repository::open(dir).ok()?;
    if repo.workdir().and_then(|w| w.canonicalize().ok()) != dir.canonicalize().ok() {
        return None;
    }
    let mut options = git2::StatusOptions::new();
    options.include_untracked(true).recurse_untracked_dirs(true).include_unmodified(true).include_ignored(false);
    let statuses = repo.statuses(Some(&mut options)).ok()?;
    let mut files: Vec<String> = statuses
        .iter()
        .filter(|s| !s.status().intersects(git2::Status::WT_DELETED | git2::Status::INDEX_DELETED))
        .filter_map(|s| s.path().ok().map(str::to_string))
        .filter(|p| dir.join(p).symlink_metadata().is_ok_and(|m| !m.is_dir()))
        .collect();
    files.sort();
    Some(files)
}

/// Checks that a patch applies to `HEAD` of the repository at `dir` (libgit2, in memory).
pub fn check_applies(dir: &Path, patch: &str) -> Result<(), GitError> {
    let repo = Repository::open(dir)?;
    let tree = repo.head()?.peel_to_tree()?;
    let diff = git2::Diff::from_buffer(patch.as_bytes())?;
    let mut options = git2::ApplyOptions::new();
    options.check(true);
    repo.apply_to_tree(&tree, &diff, Some(&mut options))?;
    Ok(())
}
