//! Recipes: YAML files that choose strategies and their params for `gen` (and, later, the
//! other stages). Unknown keys are errors that name the line.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A recipe file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Format version; 1.
    #[serde(default)]
    pub version: Option<u32>,
    /// Seed for sampling and every strategy's random stream (24 when absent, as SWE-smith).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Default cap on candidates per strategy.
    #[serde(default)]
    pub max_bugs: Option<usize>,
    /// Strategies to run, in order; all procedural ones when empty.
    #[serde(default)]
    pub strategies: Vec<StrategyEntry>,
    /// Name of the run (state and summaries are kept under it); default: the file stem.
    #[serde(default)]
    pub name: Option<String>,
    /// Source for `bugsmith run` (when no profile is given, or to create it).
    #[serde(default)]
    pub source: Option<String>,
    /// Profile file for `bugsmith run`, relative to the recipe; written by `profile init` from
    /// `source` when missing (default `<out>/profiles/<name>.yaml`).
    #[serde(default)]
    pub profile: Option<String>,
    /// Output directory for `bugsmith run`, relative to the current directory (default `logs`).
    #[serde(default)]
    pub out: Option<String>,
    /// `local` or `docker`.
    #[serde(default)]
    pub backend: Option<String>,
    /// `false`: the local backend runs tests without its sandbox (as `--no-sandbox`).
    #[serde(default)]
    pub sandbox: Option<bool>,
    /// Organisation for the profile `bugsmith run` writes (SWE-smith's org_gh/org_dh).
    #[serde(default)]
    pub org: Option<String>,
    /// Stages `bugsmith run` performs, in this order: env, gen, validate, gather, issues.
    #[serde(default)]
    pub stages: Option<Vec<String>>,
    /// Validation settings.
    #[serde(default)]
    pub validate: ValidateSection,
    /// Gather settings.
    #[serde(default)]
    pub gather: GatherSection,
    /// Issue generation settings.
    #[serde(default)]
    pub issues: IssuesSection,
    /// Language model settings (see `lm::LmConfig`).
    #[serde(default)]
    pub lm: Option<crate::lm::LmConfig>,
    /// Combine scripts for `bugsmith combine` and the `combine` stage, with their params.
    #[serde(default)]
    pub combine: Vec<CombineEntry>,
    /// PR mirroring for the `mirror` stage.
    #[serde(default)]
    pub mirror: Option<MirrorSection>,
}

/// `mirror:` of a recipe.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MirrorSection {
    /// `history` (default) or `github`.
    #[serde(default)]
    pub from: Option<String>,
    /// `owner/name` for GitHub.
    #[serde(default)]
    pub github_repo: Option<String>,
    /// At most this many changes (default 50).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Mirror script (default `pr_mirror`).
    #[serde(default)]
    pub strategy: Option<String>,
}

/// One combine script of a recipe.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CombineEntry {
    /// Script id (under strategies/combine/) or path.
    pub id: String,
    /// Params (`num_patches`, `max_combos`, `limit_per_file`, `depth`, `limit_per_module`, …).
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
}

/// `validate:` of a recipe.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ValidateSection {
    /// Parallel workers.
    #[serde(default)]
    pub jobs: Option<usize>,
    /// Seconds per candidate.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Replace a worker after this many candidates.
    #[serde(default)]
    pub recycle_after: Option<usize>,
}

/// `gather:` of a recipe.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GatherSection {
    /// Remote to push branches to.
    #[serde(default)]
    pub push: Option<String>,
}

/// `issues:` of a recipe.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IssuesSection {
    /// Template id (default `static`).
    #[serde(default)]
    pub template: Option<String>,
    /// Seed (default: the recipe's).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Extra params for the template.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
}

/// The stages `bugsmith run` knows, in order (`mirror` adds undone real changes to the
/// candidates; `combine` merges validated bugs, then validates and gathers the combinations).
pub const STAGES: [&str; 7] = ["env", "gen", "mirror", "validate", "gather", "combine", "issues"];

/// One strategy of a recipe.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StrategyEntry {
    /// Strategy id (file stem) or a path to a `.rhai` file.
    pub id: String,
    /// Per-node flip probability.
    #[serde(default)]
    pub likelihood: Option<f64>,
    /// Entities below this complexity are skipped.
    #[serde(default)]
    pub min_complexity: Option<i64>,
    /// Entities above this complexity are skipped.
    #[serde(default)]
    pub max_complexity: Option<i64>,
    /// Cap on this strategy's candidates.
    #[serde(default)]
    pub max_bugs: Option<usize>,
    /// Extra params handed to the script's hooks.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
}

/// A recipe could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RecipeError {
    /// The recipe file.
    pub path: String,
    /// What is wrong, with the line where known.
    pub message: String,
}

impl Recipe {
    /// Parses and checks a recipe's text (`path` is used in messages).
    pub fn parse(path: &str, text: &str) -> Result<Recipe, RecipeError> {
        let error = |message: String| RecipeError { path: path.to_string(), message };
        let recipe: Recipe = serde_yaml::from_str(text).map_err(|e| error(e.to_string()))?;
        if let Some(v) = recipe.version
            && v != 1
        {
            return Err(error(format!("unsupported version {v} (this bugsmith reads version 1)")));
        }
        if let Some(stages) = &recipe.stages {
            for stage in stages {
                if !STAGES.contains(&stage.as_str()) {
                    return Err(error(format!(
                        "line {}: unknown stage `{stage}` (stages: {})",
                        line_of(text, stage),
                        STAGES.join(", ")
                    )));
                }
            }
        }
        if let Some(backend) = &recipe.backend
            && backend != "local"
            && backend != "docker"
        {
            return Err(error(format!(
                "line {}: backend must be local or docker, not `{backend}`",
                line_of(text, "backend")
            )));
        }
        for entry in &recipe.strategies {
            let line = entry_line(text, &entry.id);
            if let Some(l) = entry.likelihood
                && !(0.0..=1.0).contains(&l)
            {
                return Err(error(format!(
                    "line {line}: likelihood of `{}` must be between 0 and 1, not {l}",
                    entry.id
                )));
            }
            if let (Some(min), Some(max)) = (entry.min_complexity, entry.max_complexity)
                && min > max
            {
                return Err(error(format!(
                    "line {line}: min_complexity {min} of `{}` is above max_complexity {max}",
                    entry.id
                )));
            }
        }
        Ok(recipe)
    }

    /// Reads and parses a recipe file.
    pub fn load(path: &std::path::Path) -> Result<Recipe, RecipeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RecipeError { path: path.display().to_string(), message: e.to_string() })?;
        Recipe::parse(&path.display().to_string(), &text)
    }
}

/// 1-based line of the entry `id: <id>` (else of the first mention of `id`).
pub fn entry_line(text: &str, id: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches("- ").trim_start();
            l.strip_prefix("id:").is_some_and(|rest| rest.trim() == id)
        })
        .map_or_else(|| line_of(text, id), |i| i + 1)
}

/// 1-based line where `needle` first appears (0 when absent), to point at a recipe entry.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipe_with_strategies_and_params_parses() {
        let recipe = Recipe::parse(
            "r.yaml",
            "version: 1\nseed: 7\nmax_bugs: 3\nstrategies:\n  - id: func_pm_op_change\n    likelihood: 0.5\n    params: {depth: 2}\n",
        )
        .unwrap();
        assert_eq!(recipe.seed, Some(7));
        assert_eq!(recipe.strategies[0].likelihood, Some(0.5));
        assert_eq!(recipe.strategies[0].params["depth"], serde_json::json!(2));
    }

    #[test]
    fn a_recipe_can_turn_the_sandbox_off() {
        assert_eq!(Recipe::parse("r.yaml", "sandbox: false\n").unwrap().sandbox, Some(false));
        assert_eq!(Recipe::parse("r.yaml", "seed: 1\n").unwrap().sandbox, None);
    }

    #[test]
    fn unknown_keys_are_errors_with_their_line() {
        let err = Recipe::parse("r.yaml", "seed: 1\nstrategies:\n  - id: x\n    likelyhood: 0.5\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `likelyhood`"), "{err}");
        assert!(err.to_string().contains("line 4"), "{err}");
    }

    #[test]
    fn a_likelihood_above_one_is_an_error_naming_the_strategy_line() {
        let err = Recipe::parse("r.yaml", "strategies:\n  - id: func_pm_op_swap\n    likelihood: 2\n").unwrap_err();
        assert_eq!(err.to_string(), "r.yaml: line 2: likelihood of `func_pm_op_swap` must be between 0 and 1, not 2");
    }
}
