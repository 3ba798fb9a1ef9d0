//! Instance ids, parsed and printed in one place: `<repo_name>.<strategy>__<hash8>` for
//! generated, LM and combined bugs, `<repo_name>.pr_<n>` for mirrored changes. The repository
//! part is split off with the known `repo_name` (it holds dots itself); strategy ids hold no dot.

/// An instance (or candidate) id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId {
    /// `owner__repo.<commit8>`.
    pub repo_name: String,
    /// What made it.
    pub local: LocalId,
}

/// The part after `<repo_name>.`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LocalId {
    /// `<strategy>__<hash8>`: a procedural, LM or combined bug.
    Bug {
        /// The strategy id.
        strategy: String,
        /// Content hash of the patch.
        hash: String,
    },
    /// `pr_<number>` or `pr_<commit8>`: a mirrored change.
    Mirror(String),
}

/// The strategy every mirrored change is counted under.
pub const MIRROR_STRATEGY: &str = "pr_mirror";

impl LocalId {
    /// Reads `<strategy>__<hash>` or `pr_<n>` (a strategy whose id starts with `pr_` still has
    /// its `__<hash>`).
    pub fn parse(local: &str) -> LocalId {
        match local.rsplit_once("__") {
            Some((strategy, hash)) => LocalId::Bug { strategy: strategy.to_string(), hash: hash.to_string() },
            None if local.starts_with("pr_") => LocalId::Mirror(local.to_string()),
            None => LocalId::Bug { strategy: local.to_string(), hash: String::new() },
        }
    }

    /// The strategy it is counted under.
    pub fn strategy(&self) -> &str {
        match self {
            LocalId::Bug { strategy, .. } => strategy,
            LocalId::Mirror(_) => MIRROR_STRATEGY,
        }
    }

    /// Made by merging validated bugs (a `combine_*` script).
    pub fn is_combined(&self) -> bool {
        matches!(self, LocalId::Bug { strategy, .. } if strategy.starts_with("combine_"))
    }

    /// A mirrored real change.
    pub fn is_mirrored(&self) -> bool {
        matches!(self, LocalId::Mirror(_))
    }
}

impl std::fmt::Display for LocalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LocalId::Bug { strategy, hash } => write!(f, "{strategy}__{hash}"),
            LocalId::Mirror(change) => f.write_str(change),
        }
    }
}

impl InstanceId {
    /// An id of this repository.
    pub fn new(repo_name: &str, local: LocalId) -> InstanceId {
        InstanceId { repo_name: repo_name.to_string(), local }
    }

    /// Reads a full id of the repository `repo_name`; `None` when it is another's.
    pub fn parse(repo_name: &str, id: &str) -> Option<InstanceId> {
        let local = id.strip_prefix(repo_name)?.strip_prefix('.')?;
        Some(InstanceId::new(repo_name, LocalId::parse(local)))
    }

    /// The strategy it is counted under.
    pub fn strategy(&self) -> &str {
        self.local.strategy()
    }
}

impl std::fmt::Display for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.repo_name, self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_split_with_the_known_repo_name() {
        let repo = "owner__my.repo.1234abcd";
        for text in
            [format!("{repo}.func_pm_op_swap__ab12cd34"), format!("{repo}.pr_17"), format!("{repo}.pr_like__ab12cd34")]
        {
            let id = InstanceId::parse(repo, &text).unwrap();
            assert_eq!(id.to_string(), text);
        }
        let mirrored = InstanceId::parse(repo, &format!("{repo}.pr_17")).unwrap();
        assert_eq!((mirrored.strategy(), mirrored.local.is_mirrored()), ("pr_mirror", true));
        let named_pr = InstanceId::parse(repo, &format!("{repo}.pr_like__ab12cd34")).unwrap();
        assert_eq!(
            (named_pr.strategy(), named_pr.local.is_mirrored()),
            ("pr_like", false),
            "a strategy named pr_… is not a mirror"
        );
        assert!(LocalId::parse("combine_file__x").is_combined());
        assert_eq!(InstanceId::parse("other__r.1", &format!("{repo}.pr_17")), None);
    }
}
