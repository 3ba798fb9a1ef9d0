//! Recipes: YAML files that choose strategies and their params for `gen` (and, later, the
//! other stages). Unknown keys are errors that name the line.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    /// Only entities some test executes (needs the baseline's coverage under `out`).
    #[serde(default)]
    pub covered_only: Option<bool>,
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
    pub lm: Option<LmConfig>,
    /// Combine scripts for `bugsmith combine` and the `combine` stage, with their params.
    #[serde(default)]
    pub combine: Vec<CombineEntry>,
    /// PR mirroring for the `mirror` stage.
    #[serde(default)]
    pub mirror: Option<MirrorSection>,
    /// A candidate budget spent across strategies by yield (`run` and campaigns only).
    #[serde(default)]
    pub budget: Option<BudgetSection>,
    /// The recipe file's folder, where its relative script paths start (set by `load`).
    #[serde(skip)]
    pub base: Option<std::path::PathBuf>,
}

/// `budget:` of a recipe: candidates spent across strategies in rounds of gen and validate.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BudgetSection {
    /// `adaptive` (the only one): more to the strategies with more valid instances per candidate.
    pub strategy: String,
    /// Candidates to make in all.
    pub total: usize,
    /// Rounds the budget is planned over (default 4).
    #[serde(default)]
    pub rounds: Option<usize>,
    /// Candidates every strategy that can still make some gets per round (default 1).
    #[serde(default)]
    pub floor: Option<usize>,
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
    /// Which tests a candidate runs: `covering` (those that execute its changes) or `all`.
    #[serde(default)]
    pub select: Option<Selector>,
    /// P2P from a full-suite second run instead of the baseline.
    #[serde(default)]
    pub exact: Option<bool>,
    /// Percent of candidates also run through the full suite to check the selection.
    #[serde(default)]
    pub verify: Option<f64>,
}

/// How validation chooses the tests a candidate runs.
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Selector {
    /// The tests that execute the changed code (per-test coverage of the baseline).
    #[default]
    Covering,
    /// The whole suite.
    All,
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

/// A recipe could not be read: every problem found, each with its line.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.problems.iter().map(|(line, m)| if *line > 0 { format!("{}: line {line}: {m}", self.path) } else { format!("{}: {m}", self.path) }).collect::<Vec<_>>().join("\n"))]
pub struct RecipeError {
    /// The recipe file.
    pub path: String,
    /// (1-based line, 0 when unknown; what is wrong), in line order.
    pub problems: Vec<(usize, String)>,
}

/// Top-level keys whose value is a map of settings, checked key by key.
const SECTIONS: [&str; 6] = ["validate", "gather", "issues", "lm", "mirror", "budget"];
/// Top-level keys whose value is a list of `id:` entries, checked entry by entry and key by key.
const LISTS: [&str; 2] = ["strategies", "combine"];

impl Recipe {
    /// Parses and checks a recipe's text (`path` is used in messages); reports every problem
    /// at once, each at the line of its key, in words.
    pub fn parse(path: &str, text: &str) -> Result<Recipe, RecipeError> {
        let error = |problems: Vec<(usize, String)>| RecipeError { path: path.to_string(), problems };
        let document: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| error(vec![yaml_problem(&e)]))?;
        match serde_yaml::from_value::<Recipe>(document.clone()) {
            Ok(recipe) => {
                let problems = recipe.problems(text);
                if problems.is_empty() { Ok(recipe) } else { Err(error(problems)) }
            }
            Err(first) => {
                let mut problems = structural_problems(&document, text);
                if problems.is_empty() {
                    problems.push((0, in_words(&first.to_string())));
                }
                problems.sort();
                Err(error(problems))
            }
        }
    }

    /// What is wrong with the values of a recipe that parsed.
    fn problems(&self, text: &str) -> Vec<(usize, String)> {
        let mut problems = Vec::new();
        if let Some(v) = self.version
            && v != 1
        {
            problems.push((
                key_line(text, 0, "version"),
                format!("unsupported version {v} (this bugsmith reads version 1)"),
            ));
        }
        for stage in self.stages.iter().flatten() {
            if !STAGES.contains(&stage.as_str()) {
                problems
                    .push((line_of(text, stage), format!("unknown stage `{stage}` (stages: {})", STAGES.join(", "))));
            }
        }
        if let Some(backend) = &self.backend
            && backend != "local"
            && backend != "docker"
        {
            problems.push((key_line(text, 0, "backend"), format!("backend must be local or docker, not `{backend}`")));
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for entry in &self.strategies {
            let nth = seen.entry(entry.id.as_str()).or_default();
            let start = nth_entry_line(text, &entry.id, *nth);
            *nth += 1;
            let line = |key: &str| key_line(text, start.saturating_sub(1), key);
            if *nth > 1 {
                problems.push((start, format!("strategy `{}` is listed twice", entry.id)));
            }
            if let Some(l) = entry.likelihood
                && !(0.0..=1.0).contains(&l)
            {
                problems.push((
                    line("likelihood"),
                    format!("likelihood of `{}` must be between 0 and 1, not {l}", entry.id),
                ));
            }
            for (key, value) in [("min_complexity", entry.min_complexity), ("max_complexity", entry.max_complexity)] {
                if let Some(v) = value
                    && v < 0
                {
                    problems.push((line(key), format!("{key} of `{}` must be 0 or more, not {v}", entry.id)));
                }
            }
            if let (Some(min), Some(max)) = (entry.min_complexity, entry.max_complexity)
                && min > max
            {
                problems.push((
                    line("min_complexity"),
                    format!("min_complexity {min} of `{}` is above max_complexity {max}", entry.id),
                ));
            }
        }
        if let Some(budget) = &self.budget {
            if budget.strategy != "adaptive" {
                problems.push((
                    key_line(text, key_line(text, 0, "budget"), "strategy"),
                    format!("budget.strategy must be adaptive, not `{}`", budget.strategy),
                ));
            }
            if budget.total == 0 {
                problems.push((key_line(text, 0, "total"), "budget.total must be 1 or more".into()));
            }
        }
        let mut combos: BTreeMap<&str, usize> = BTreeMap::new();
        for entry in &self.combine {
            let nth = combos.entry(entry.id.as_str()).or_default();
            if *nth > 0 {
                let line = nth_entry_line(text, &entry.id, *nth);
                problems.push((line, format!("combine script `{}` is listed twice", entry.id)));
            }
            *nth += 1;
        }
        problems.sort();
        problems
    }

    /// Reads and parses a recipe file.
    pub fn load(path: &std::path::Path) -> Result<Recipe, RecipeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RecipeError { path: path.display().to_string(), problems: vec![(0, e.to_string())] })?;
        let mut recipe = Recipe::parse(&path.display().to_string(), &text)?;
        recipe.base = Some(path.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| ".".into(), Into::into));
        Ok(recipe)
    }

    /// A script named in the recipe: an id as it is, a relative `.rhai` path from the recipe's
    /// folder.
    pub fn script(&self, spec: &str) -> String {
        match &self.base {
            Some(base) if spec.ends_with(".rhai") && std::path::Path::new(spec).is_relative() => {
                base.join(spec).display().to_string()
            }
            _ => spec.to_string(),
        }
    }
}

/// A YAML syntax error with its line.
fn yaml_problem(error: &serde_yaml::Error) -> (usize, String) {
    let line = error.location().map_or(0, |l| l.line());
    let message = error.to_string();
    let message = message.split(" at line ").next().unwrap_or(&message).to_string();
    (line, in_words(&message))
}

/// Every key of the document whose value does not fit, found by reading each key (and each
/// key of each section and list entry) on its own.
fn structural_problems(document: &serde_yaml::Value, text: &str) -> Vec<(usize, String)> {
    use serde_yaml::{Mapping, Value};
    let fits = |doc: Value| serde_yaml::from_value::<Recipe>(doc).err().map(|e| in_words(&e.to_string()));
    let single = |key: &Value, value: Value| Value::Mapping(Mapping::from_iter([(key.clone(), value)]));
    let mut problems = Vec::new();
    let Some(top) = document.as_mapping() else {
        return vec![(1, "a recipe is a map of settings (key: value lines)".into())];
    };
    for (key, value) in top {
        let name = key.as_str().unwrap_or_default();
        let line = key_line(text, 0, name);
        let Some(problem) = fits(single(key, value.clone())) else { continue };
        match (value, SECTIONS.contains(&name), LISTS.contains(&name)) {
            (Value::Mapping(section), true, _) => {
                for (inner, inner_value) in section {
                    let inner_name = inner.as_str().unwrap_or_default();
                    if let Some(problem) = fits(single(key, single(inner, inner_value.clone()))) {
                        problems.push((key_line(text, line, inner_name), format!("{name}.{inner_name}: {problem}")));
                    }
                }
            }
            (Value::Sequence(entries), _, true) => {
                for entry in entries {
                    let Some(map) = entry.as_mapping() else {
                        problems.push((line, format!("{name}: each entry is a map with an `id`")));
                        continue;
                    };
                    let id = map.get("id").and_then(Value::as_str).unwrap_or("placeholder");
                    let start = entry_line(text, id).max(line);
                    for (inner, inner_value) in map {
                        let inner_name = inner.as_str().unwrap_or_default();
                        let mut one = Mapping::from_iter([(Value::from("id"), Value::from(id))]);
                        one.insert(inner.clone(), inner_value.clone());
                        if let Some(problem) = fits(single(key, Value::Sequence(vec![Value::Mapping(one)]))) {
                            problems.push((
                                key_line(text, start.saturating_sub(1), inner_name),
                                format!("{name} `{id}`: {problem}"),
                            ));
                        }
                    }
                    if !map.contains_key("id") {
                        problems.push((start, format!("{name}: an entry has no `id`")));
                    }
                }
            }
            _ => problems.push((line, format!("{name}: {problem}"))),
        }
    }
    problems
}

/// A serde message without Rust's type names.
fn in_words(message: &str) -> String {
    let mut text = message.to_string();
    for (rust, words) in [
        ("expected usize", "expected a whole number (0 or more)"),
        ("expected u64", "expected a whole number (0 or more)"),
        ("expected u32", "expected a whole number (0 or more)"),
        ("expected u16", "expected a whole number (0 or more)"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a string", "expected text"),
        ("expected a sequence", "expected a list"),
        ("expected a boolean", "expected true or false"),
        (
            "expected struct StrategyEntry",
            "expected a map (id, likelihood, min_complexity, max_complexity, max_bugs, params)",
        ),
        ("expected struct CombineEntry", "expected a map (id, params)"),
        ("expected struct Recipe", "expected a map of settings"),
        ("expected a map", "expected a map (key: value lines)"),
        ("invalid type: ", ""),
        ("invalid value: ", ""),
        ("unknown field", "unknown key"),
        ("missing field", "missing key"),
    ] {
        text = text.replace(rust, words);
    }
    if let Some(at) = text.find("expected struct ") {
        text.truncate(at);
        text.push_str("expected a map");
    }
    text
}

/// 1-based line of `key:` at or after line `after` (0-based start), else the first mention.
pub fn key_line(text: &str, after: usize, key: &str) -> usize {
    text.lines()
        .enumerate()
        .skip(after)
        .find(|(_, l)| {
            let l = l.trim_start().trim_start_matches("- ").trim_start();
            l.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map_or_else(|| line_of(text, key), |(i, _)| i + 1)
}

/// Where a recipe's relative paths start.
pub fn base_of(path: &std::path::Path) -> PathBuf {
    path.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf)
}

/// A recipe's source: local directories are relative to the recipe.
pub fn source_in(base: &std::path::Path, source: &str) -> String {
    let local = base.join(source);
    if !source.contains(':') && !std::path::Path::new(source).is_absolute() && local.is_dir() {
        local.display().to_string()
    } else {
        source.to_string()
    }
}

/// 1-based line of the entry `id: <id>` (else of the first mention of `id`).
pub fn entry_line(text: &str, id: &str) -> usize {
    nth_entry_line(text, id, 0)
}

/// 1-based line of the `n`-th (0-based) entry `id: <id>`.
fn nth_entry_line(text: &str, id: &str, n: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim_start().trim_start_matches("- ").trim_start();
            l.strip_prefix("id:").is_some_and(|rest| rest.trim() == id)
        })
        .nth(n)
        .map_or_else(|| line_of(text, id), |(i, _)| i + 1)
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
        assert!(err.to_string().contains("unknown key `likelyhood`"), "{err}");
        assert!(err.to_string().contains("line 4"), "{err}");
    }

    #[test]
    fn a_likelihood_above_one_is_an_error_at_its_own_line() {
        let err = Recipe::parse("r.yaml", "strategies:\n  - id: func_pm_op_swap\n    likelihood: 2\n").unwrap_err();
        assert_eq!(err.to_string(), "r.yaml: line 3: likelihood of `func_pm_op_swap` must be between 0 and 1, not 2");
    }

    #[test]
    fn every_problem_is_reported_at_once_at_its_key_in_words() {
        let text = "seed: many\nstrategies:\n  - id: a\n    max_bugs: -1\n    likelyhood: 0.5\n  - id: b\n    min_complexity: -2\nvalidate:\n  jobs: two\n";
        let err = Recipe::parse("r.yaml", text).unwrap_err();
        let lines: Vec<usize> = err.problems.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [1, 4, 5, 9], "{err}");
        let message = err.to_string();
        assert!(
            message.contains("expected a whole number (0 or more)") && message.contains("unknown key `likelyhood`"),
            "{message}"
        );
        assert!(!message.contains("usize") && !message.contains("struct"), "{message}");
        let err = Recipe::parse("r.yaml", "strategies:\n  - id: b\n    min_complexity: -2\n  - id: b\n").unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(err.to_string().contains("line 3: min_complexity of `b` must be 0 or more, not -2"), "{err}");
        assert!(err.to_string().contains("line 4: strategy `b` is listed twice"), "{err}");
    }
}

/// How to reach a model. Every field has a default; recipes set what they need.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LmConfig {
    /// Base URL of the OpenAI-compatible API (`…/v1`).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Model name.
    #[serde(default = "default_model")]
    pub model: String,
    /// Environment variable holding the API key.
    #[serde(default = "default_key_env")]
    pub api_key_env: String,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: f64,
    /// Seconds per request.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Retries after a 429, a 5xx or a transport error.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// First backoff in milliseconds (doubles each retry, at most 30 s; `Retry-After` wins).
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
    /// Requests in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Stop making calls once this many dollars are spent (cached answers are free).
    #[serde(default)]
    pub budget_usd: Option<f64>,
    /// Dollars per million prompt and completion tokens, by model.
    #[serde(default)]
    pub prices: BTreeMap<String, (f64, f64)>,
    /// Answer only from the cache; a request not in it is an error.
    #[serde(default)]
    pub replay: bool,
    /// Where responses are cached (default `<cache>/lm`).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
}

fn default_base_url() -> String {
    "https://api.openai.com/v1".into()
}
fn default_model() -> String {
    "gpt-4o".into()
}
fn default_key_env() -> String {
    "OPENAI_API_KEY".into()
}
fn default_timeout() -> u64 {
    120
}
fn default_retries() -> u32 {
    4
}
fn default_backoff() -> u64 {
    1000
}
fn default_concurrency() -> usize {
    4
}

impl Default for LmConfig {
    fn default() -> LmConfig {
        serde_yaml::from_str("{}").unwrap_or_else(|_| unreachable!("all fields have defaults"))
    }
}
