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
    /// A patch could not be read or applied.
    #[error("patch {index} {message}")]
    Patch {
        /// 1-based position among the patches given.
        index: usize,
        /// Why.
        message: String,
    },
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
/// The commit `revision` (default `HEAD`) names in the remote `url`, without cloning:
/// a full commit id as given, else `git ls-remote` (an annotated tag's commit, not the tag).
/// `None` when the remote cannot tell (an abbreviated id, no such ref, no network).
pub fn remote_commit(url: &str, revision: Option<&str>) -> Option<String> {
    let revision = revision.unwrap_or("HEAD");
    if revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()) {
        return Some(revision.to_lowercase());
    }
    let output = Command::new("git").args(["ls-remote", url, revision, &format!("{revision}^{{}}")]).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let lines: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once('\t')).collect();
    // A peeled tag (`^{}`) is the commit; otherwise the one ref that matched.
    lines
        .iter()
        .find(|(_, name)| name.ends_with("^{}"))
        .or_else(|| (lines.len() == 1).then(|| &lines[0]))
        .map(|(sha, _)| sha.to_string())
}

/// Clones `url` into `dest` and checks out `revision` (default: the remote's HEAD); returns
/// the commit id.
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

/// Clones (or updates) `dest` from the repository at `source`, with `origin` pointing at it and
/// exactly one local branch for every branch of `source`; the checked-out branch stays.
pub fn clone_with_branches(source: &Path, dest: &Path) -> Result<(), GitError> {
    let url = source.display().to_string();
    let repo = match Repository::open(dest) {
        Ok(repo) => {
            repo.remote_set_url("origin", &url)?;
            let mut options = git2::FetchOptions::new();
            options.prune(git2::FetchPrune::On);
            repo.find_remote("origin")?.fetch(&["+refs/heads/*:refs/remotes/origin/*"], Some(&mut options), None)?;
            repo
        }
        Err(_) => Repository::clone(&url, dest)?,
    };
    let current = repo.head().ok().and_then(|h| h.shorthand().ok().map(str::to_string));
    // Local branches the source no longer has go (the one checked out stays).
    let mut gone = Vec::new();
    for branch in repo.branches(Some(git2::BranchType::Local))? {
        let name = branch?.0.name()?.unwrap_or("").to_string();
        if Some(&name) != current.as_ref()
            && repo.find_branch(&format!("origin/{name}"), git2::BranchType::Remote).is_err()
        {
            gone.push(name);
        }
    }
    for name in gone {
        repo.find_branch(&name, git2::BranchType::Local)?.delete()?;
    }
    for branch in repo.branches(Some(git2::BranchType::Remote))? {
        let (branch, _) = branch?;
        let Some(name) = branch.name()?.and_then(|n| n.strip_prefix("origin/")).map(str::to_string) else { continue };
        if name == "HEAD" || Some(&name) == current.as_ref() {
            continue;
        }
        let commit = branch.get().peel_to_commit()?;
        let mut local = repo.branch(&name, &commit, true)?;
        local.set_upstream(Some(&format!("origin/{name}")))?;
    }
    Ok(())
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

/// The `origin` URL and `HEAD` commit of `dir` when it is the root of a git work tree that is
/// clean (nothing modified, nothing untracked that is not ignored) and has an `origin` remote.
pub fn clean_origin(dir: &Path) -> Option<(String, String)> {
    let repo = Repository::open(dir).ok()?;
    if repo.workdir().and_then(|w| w.canonicalize().ok()) != dir.canonicalize().ok() {
        return None;
    }
    let url = repo.find_remote("origin").ok()?.url().ok()?.to_string();
    let mut options = git2::StatusOptions::new();
    options.include_untracked(true).recurse_untracked_dirs(true).include_ignored(false);
    if !repo.statuses(Some(&mut options)).ok()?.is_empty() {
        return None;
    }
    let head = repo.head().ok()?.peel_to_commit().ok()?.id().to_string();
    Some((url, head))
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

/// A bare mirror repository: the clean commit flattened to one root commit on `main`, and one
/// branch per task instance.
pub struct Mirror {
    repo: Repository,
}

fn fixed_signature(name: &str) -> Result<Signature<'static>, GitError> {
    Ok(Signature::new(name, &format!("{name}@localhost"), &Time::new(0, 0))?)
}

/// Paths a mirror leaves out: CI workflows would run on every pushed branch.
fn is_ci_file(path: &str) -> bool {
    path.starts_with(".github/workflows/")
}

impl Mirror {
    /// Opens an existing mirror.
    pub fn open(path: &Path) -> Result<Mirror, GitError> {
        Ok(Mirror { repo: Repository::open_bare(path)? })
    }

    /// Opens the mirror at `path`, creating it from `HEAD` of `checkout` when missing.
    pub fn open_or_create(path: &Path, checkout: &Path) -> Result<Mirror, GitError> {
        if let Ok(repo) = Repository::open_bare(path) {
            return Ok(Mirror { repo });
        }
        let repo = Repository::init_bare(path)?;
        let source = Repository::open(checkout)?;
        let tree = source.head()?.peel_to_tree()?;
        // Copy the blobs into the mirror and rebuild the tree without CI files.
        let mut index = git2::Index::new()?;
        let mut failure = None;
        tree.walk(git2::TreeWalkMode::PreOrder, |root, entry| {
            if entry.kind() != Some(git2::ObjectType::Blob) {
                return git2::TreeWalkResult::Ok;
            }
            let path = format!("{root}{}", entry.name().unwrap_or(""));
            if is_ci_file(&path) {
                return git2::TreeWalkResult::Ok;
            }
            let added = source.find_blob(entry.id()).and_then(|blob| {
                let id = repo.blob(blob.content())?;
                index.add(&git2::IndexEntry {
                    ctime: git2::IndexTime::new(0, 0),
                    mtime: git2::IndexTime::new(0, 0),
                    dev: 0,
                    ino: 0,
                    mode: entry.filemode() as u32,
                    uid: 0,
                    gid: 0,
                    file_size: 0,
                    id,
                    flags: 0,
                    flags_extended: 0,
                    path: path.into_bytes(),
                })
            });
            match added {
                Ok(()) => git2::TreeWalkResult::Ok,
                Err(e) => {
                    failure = Some(e);
                    git2::TreeWalkResult::Abort
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e.into());
        }
        let tree_id = index.write_tree_to(&repo)?;
        let signature = fixed_signature("bugsmith")?;
        {
            let tree = repo.find_tree(tree_id)?;
            repo.commit(Some("refs/heads/main"), &signature, &signature, "Initial commit", &tree, &[])?;
        }
        repo.set_head("refs/heads/main")?;
        Ok(Mirror { repo })
    }

    /// Whether a branch exists.
    pub fn has_branch(&self, name: &str) -> bool {
        self.repo.find_branch(name, git2::BranchType::Local).is_ok()
    }

    /// Names of all branches, sorted.
    pub fn branches(&self) -> Result<Vec<String>, GitError> {
        let mut names = Vec::new();
        for branch in self.repo.branches(Some(git2::BranchType::Local))? {
            if let Some(name) = branch?.0.name()? {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The commit id a revision (`main`, a branch, `<branch>~1`) names.
    pub fn commit_id(&self, revision: &str) -> Option<String> {
        Some(self.repo.revparse_single(revision).ok()?.peel_to_commit().ok()?.id().to_string())
    }

    /// The git-format diff between two revisions' trees (empty when they are the same).
    pub fn diff(&self, from: &str, to: &str) -> Result<String, GitError> {
        let tree =
            |rev: &str| -> Result<git2::Tree<'_>, GitError> { Ok(self.repo.revparse_single(rev)?.peel_to_tree()?) };
        let diff = self.repo.diff_tree_to_tree(Some(&tree(from)?), Some(&tree(to)?), None)?;
        Ok(String::from_utf8_lossy(&patch_bytes(&diff)?).into_owned())
    }

    /// Branch names with the commit each points at, sorted.
    pub fn branch_heads(&self) -> Result<Vec<(String, String)>, GitError> {
        let mut heads = Vec::new();
        for name in self.branches()? {
            let id = self.commit_id(&name).unwrap_or_default();
            heads.push((name, id));
        }
        Ok(heads)
    }

    /// The git directory.
    pub fn path(&self) -> &Path {
        self.repo.path()
    }

    /// The text of a file on `main` (None when absent or not UTF-8).
    pub fn main_file(&self, path: &str) -> Option<String> {
        let tree = self.repo.find_branch("main", git2::BranchType::Local).ok()?.get().peel_to_tree().ok()?;
        let blob = tree.get_path(Path::new(path)).ok()?.to_object(&self.repo).ok()?.peel_to_blob().ok()?;
        String::from_utf8(blob.content().to_vec()).ok()
    }

    /// Creates branch `name` from `main`: a commit applying `patch` (the bug), then a commit
    /// hiding the F2P tests with the changes of `hide` (new text, or `None` to delete; empty
    /// when no test could be hidden).
    pub fn add_instance(&self, name: &str, patch: &str, hide: &[(String, Option<String>)]) -> Result<(), GitError> {
        let main = self.repo.find_branch("main", git2::BranchType::Local)?.get().peel_to_commit()?;
        let diff = git2::Diff::from_buffer(patch.as_bytes())?;
        let mut index = self.repo.apply_to_tree(&main.tree()?, &diff, None)?;
        let signature = fixed_signature("bugsmith")?;
        let bug_tree = self.repo.find_tree(index.write_tree_to(&self.repo)?)?;
        let bug = self.repo.commit(None, &signature, &signature, "Bug Patch", &bug_tree, &[&main])?;
        let bug = self.repo.find_commit(bug)?;
        // Always a second commit (possibly empty), so `<id>~1` is the bug commit everywhere.
        for (path, text) in hide {
            match text {
                Some(text) => {
                    let mut entry =
                        index.get_path(Path::new(path), 0).ok_or_else(|| git2::Error::from_str("missing test file"))?;
                    entry.id = self.repo.blob(text.as_bytes())?;
                    entry.file_size = text.len() as u32;
                    index.add(&entry)?;
                }
                None => index.remove_path(Path::new(path))?,
            }
        }
        let tree = self.repo.find_tree(index.write_tree_to(&self.repo)?)?;
        let hidden = self.repo.commit(None, &signature, &signature, "Remove F2P Tests", &tree, &[&bug])?;
        let tip = self.repo.find_commit(hidden)?;
        self.repo.branch(name, &tip, false)?;
        Ok(())
    }

    /// Pushes branches to `remote` (a URL or path) with the `git` program. A token, when given,
    /// goes in an HTTP header through the environment, never on the command line or in logs.
    pub fn push(&self, remote: &str, branches: &[String], token: Option<&str>) -> Result<(), GitError> {
        if branches.is_empty() {
            return Ok(());
        }
        let mut command = Command::new("git");
        command.arg("--git-dir").arg(self.repo.path()).args(["push", "--quiet", remote]);
        command.args(branches.iter().map(|b| format!("refs/heads/{b}:refs/heads/{b}")));
        if let Some(token) = token {
            use base64::Engine as _;
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
            command
                .env("GIT_CONFIG_COUNT", "2")
                // Scoped to the remote's URL, with redirects off, so the token goes nowhere else.
                .env("GIT_CONFIG_KEY_0", format!("http.{remote}.extraHeader"))
                .env("GIT_CONFIG_VALUE_0", format!("Authorization: Basic {basic}"))
                .env("GIT_CONFIG_KEY_1", "http.followRedirects")
                .env("GIT_CONFIG_VALUE_1", "false");
        }
        let output =
            command.output().map_err(|e| GitError::Program { command: "push".into(), output: e.to_string() })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let cleaned = token.map_or(stderr.to_string(), |t| stderr.replace(t, "***"));
            return Err(GitError::Program { command: format!("push to {remote}"), output: cleaned.trim().to_string() });
        }
        Ok(())
    }
}

/// A diff as git-format patch text.
fn patch_bytes(diff: &git2::Diff<'_>) -> Result<Vec<u8>, git2::Error> {
    let mut text = Vec::new();
    diff.print(git2::DiffFormat::Patch, |_, _, line| {
        if matches!(line.origin(), '+' | '-' | ' ') {
            text.push(line.origin() as u8);
        }
        text.extend_from_slice(line.content());
        true
    })?;
    Ok(text)
}

/// Applies patches one after another to `HEAD` of the repository at `dir` (in memory) and
/// returns one git-format patch with all of them, or why they do not combine (a hunk that no
/// longer applies: two patches touch the same lines).
pub fn merge_patches(dir: &Path, patches: &[String]) -> Result<String, GitError> {
    let repo = Repository::open(dir)?;
    let base = repo.head()?.peel_to_tree()?;
    let mut tree = base.clone();
    for (i, patch) in patches.iter().enumerate() {
        let bad = |message: String| GitError::Patch { index: i + 1, message };
        let diff =
            git2::Diff::from_buffer(patch.as_bytes()).map_err(|e| bad(format!("cannot be read: {}", e.message())))?;
        let mut index = repo
            .apply_to_tree(&tree, &diff, None)
            .map_err(|e| bad(format!("does not apply on top of the others: {}", e.message())))?;
        tree = repo.find_tree(index.write_tree_to(&repo)?)?;
    }
    let diff = repo.diff_tree_to_tree(Some(&base), Some(&tree), None)?;
    String::from_utf8(patch_bytes(&diff)?)
        .map_err(|_| GitError::Patch { index: patches.len(), message: "makes a merged patch that is not UTF-8".into() })
}

/// The text of a file at `HEAD` of the repository at `dir` (None when absent or not UTF-8).
pub fn head_file(dir: &Path, path: &str) -> Option<String> {
    let repo = Repository::open(dir).ok()?;
    let tree = repo.head().ok()?.peel_to_tree().ok()?;
    let blob = tree.get_path(Path::new(path)).ok()?.to_object(&repo).ok()?.peel_to_blob().ok()?;
    String::from_utf8(blob.content().to_vec()).ok()
}

/// One commit of a repository's history, as a change a PR mirror can undo.
#[derive(Clone, Debug)]
pub struct CommitChange {
    /// Full commit id.
    pub id: String,
    /// First line of the message.
    pub title: String,
    /// The rest of the message.
    pub body: String,
    /// The commit's diff against its parent, limited to the paths `keep` accepts.
    pub patch: String,
    /// Those paths.
    pub files: Vec<String>,
}

/// The non-merge commits reachable from `HEAD` (newest first, at most `limit`), each with its
/// diff restricted to paths for which `keep` is true.
pub fn history(dir: &Path, limit: usize, keep: impl Fn(&str) -> bool) -> Result<Vec<CommitChange>, GitError> {
    let repo = Repository::open(dir)?;
    let mut walk = repo.revwalk()?;
    walk.push_head()?;
    walk.simplify_first_parent()?;
    let mut changes = Vec::new();
    for oid in walk {
        if changes.len() >= limit {
            break;
        }
        let commit = repo.find_commit(oid?)?;
        if commit.parent_count() != 1 {
            continue;
        }
        let parent = commit.parent(0)?.tree()?;
        let diff = repo.diff_tree_to_tree(Some(&parent), Some(&commit.tree()?), None)?;
        let mut files = Vec::new();
        let mut text = Vec::new();
        diff.print(git2::DiffFormat::Patch, |delta, _, line| {
            let path = delta
                .new_file()
                .path()
                .or(delta.old_file().path())
                .map(|p| p.to_string_lossy().to_string())
                .unwrap_or_default();
            if !keep(&path) {
                return true;
            }
            if !files.contains(&path) {
                files.push(path);
            }
            if matches!(line.origin(), '+' | '-' | ' ') {
                text.push(line.origin() as u8);
            }
            text.extend_from_slice(line.content());
            true
        })?;
        let message = commit.message().unwrap_or("").to_string();
        let (title, body) = message
            .split_once('\n')
            .map_or((message.clone(), String::new()), |(t, b)| (t.to_string(), b.trim().to_string()));
        changes.push(CommitChange {
            id: oid_string(&commit),
            title,
            body,
            patch: String::from_utf8_lossy(&text).into_owned(),
            files,
        });
    }
    Ok(changes)
}

fn oid_string(commit: &git2::Commit<'_>) -> String {
    commit.id().to_string()
}
