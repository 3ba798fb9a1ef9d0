//! Real changes to undo (the `mirror` stage's input): a commit or a merged pull request, from
//! the repository's history or from GitHub. Plain data.

use serde::Serialize;

use crate::ast::is_test_path;

/// A change to mirror.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    /// `pr_<number>` for pull requests, `pr_<commit8>` for commits.
    pub id: String,
    /// Title of the PR or first line of the commit message.
    pub title: String,
    /// The linked issue's text (or the PR/commit description).
    pub issue_text: String,
    /// The change's diff (source files only, tests left out).
    pub patch: String,
    /// Where it came from (`commit <sha>` or a PR URL).
    pub origin: String,
}

/// A path a mirror may touch: Python source, not tests.
pub fn is_mirrored_path(path: &str) -> bool {
    path.ends_with(".py") && !is_test_path(path)
}
