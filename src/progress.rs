//! What long stages report while they run: progress steps and problems (a file, an entity, a
//! script that failed), each with its location. The terminal shows them; tests ignore them.

use serde::Serialize;

/// Something that was skipped, with where and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `path[:line:column]` or `script:line:column (entity)`.
    pub location: String,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Progress hooks (the console draws them; tests pass [`NoProgress`]).
pub trait Progress: Sync {
    /// A phase starts with `total` steps.
    fn phase(&self, name: &str, total: u64);
    /// `n` steps done.
    fn advance(&self, n: u64);
    /// A problem to show now.
    fn problem(&self, problem: &Problem);
    /// A short live status (such as the yield so far).
    fn note(&self, _text: &str) {}
}

/// Progress that shows nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn problem(&self, _: &Problem) {}
}
