//! Settings, resolved once: the defaults in one place, the rule every command follows
//! (command-line flag > recipe > profile > default; a script's own constants sit below the
//! recipe's params), and the typed settings each stage takes (never clap types). A stage's
//! flags are what its command line (or `run`'s) gave, every one optional, so "given" is
//! known. Plain data, no I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::profile::LimitSettings;
pub use crate::recipe::LmConfig;
use crate::recipe::Recipe;
pub use crate::recipe::Selector;

/// Every default, in one place.
pub mod defaults {
    /// Seed for sampling and every random stream (SWE-smith's).
    pub const SEED: u64 = 24;
    /// Output directory.
    pub const OUT: &str = "logs";
    /// Issue template.
    pub const TEMPLATE: &str = "static";
    /// Mirror script.
    pub const MIRROR_SCRIPT: &str = "pr_mirror";
    /// Changes a mirror run takes at most.
    pub const MIRROR_LIMIT: usize = 50;
    /// Where mirror changes come from.
    pub const MIRROR_FROM: &str = "history";
    /// GitHub's API.
    pub const GITHUB_API: &str = "https://api.github.com";
    /// Candidates a worker validates before it is replaced.
    pub const RECYCLE_AFTER: usize = 200;
    /// Combine script when none is named.
    pub const COMBINE_SCRIPT: &str = "combine_file";
    /// Name of an evaluation run.
    pub const RUN_ID: &str = "eval";
    /// Address `serve` listens on.
    pub const BIND: &str = "127.0.0.1:8765";
    /// Percent of candidates whose test selection is checked against the full suite.
    pub const VERIFY_PERCENT: f64 = 5.0;
    /// Workers when neither `-j` nor the recipe says: one per core.
    pub fn jobs() -> usize {
        std::thread::available_parallelism().map_or(2, usize::from)
    }
}

/// The first of a flag, the recipe's value and the profile's that is set, else the default.
pub fn pick<T>(flag: Option<T>, recipe: Option<T>, profile: Option<T>, default: T) -> T {
    flag.or(recipe).or(profile).unwrap_or(default)
}

/// What a recipe gives a script as `params` (`likelihood`, `min_complexity`, … and anything
/// its `params:` name).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Params(pub BTreeMap<String, serde_json::Value>);

impl Params {
    /// Sets one value.
    pub fn set(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        self.0.insert(key.to_string(), value.into());
    }
}

/// Where validation runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Processes on this machine (a virtualenv per repository).
    #[default]
    Local,
    /// Containers of a Docker daemon.
    Docker,
}

/// `--lm-*` flags.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LmFlags {
    /// `--lm-model`.
    pub model: Option<String>,
    /// `--lm-base-url`.
    pub base_url: Option<String>,
    /// `--lm-key-env`.
    pub key_env: Option<String>,
    /// `--lm-budget`.
    pub budget: Option<f64>,
    /// `--lm-concurrency`.
    pub concurrency: Option<usize>,
    /// `--lm-replay`.
    pub replay: bool,
}

/// The model settings: the flags over the recipe's `lm:` over the defaults.
pub fn lm_config(recipe: &Recipe, flags: &LmFlags) -> LmConfig {
    let mut config = recipe.lm.clone().unwrap_or_default();
    config.model = pick(flags.model.clone(), None, None, config.model);
    config.base_url = pick(flags.base_url.clone(), None, None, config.base_url);
    config.api_key_env = pick(flags.key_env.clone(), None, None, config.api_key_env);
    config.budget_usd = flags.budget.or(config.budget_usd);
    config.concurrency = pick(flags.concurrency, None, None, config.concurrency);
    config.replay |= flags.replay;
    config
}

/// `--no-sandbox` and the limit flags.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SandboxFlags {
    /// `--no-sandbox`.
    pub no_sandbox: bool,
    /// Limits given on the command line.
    pub limits: LimitSettings,
}

/// How candidates are contained.
#[derive(Clone, Debug, PartialEq)]
pub struct Containment {
    /// Local backend: run each candidate in the sandbox (`--no-sandbox` turns it off).
    pub sandbox: bool,
    /// Limits given on the command line; they win over the profile's `limits:`.
    pub limits: LimitSettings,
}

impl Default for Containment {
    fn default() -> Containment {
        Containment { sandbox: true, limits: LimitSettings::default() }
    }
}

/// Containment from the flags; a recipe's `sandbox: false` counts as `--no-sandbox`.
pub fn containment(flags: &SandboxFlags, recipe: &Recipe) -> Containment {
    Containment { sandbox: !flags.no_sandbox && recipe.sandbox != Some(false), limits: flags.limits.clone() }
}

/// The backend: the flag, else the recipe's `backend:`, else local.
pub fn backend(flag: Option<BackendKind>, recipe: &Recipe) -> BackendKind {
    let from_recipe =
        recipe.backend.as_deref().map(|b| if b == "docker" { BackendKind::Docker } else { BackendKind::Local });
    pick(flag, from_recipe, None, BackendKind::Local)
}

/// `gen`'s flags.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenFlags {
    /// `--strategy` (ids or paths); empty: the recipe's, else every procedural one.
    pub strategies: Vec<String>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--max-bugs`.
    pub max_bugs: Option<usize>,
    /// `--file` globs.
    pub files: Vec<String>,
    /// `--clean`.
    pub clean: bool,
    /// `--covered-only`.
    pub covered_only: bool,
    /// `--lm-*`.
    pub lm: LmFlags,
}

/// One strategy of a `gen` run.
#[derive(Clone, Debug, PartialEq)]
pub struct StrategyPlan {
    /// Id or path (a recipe's paths already resolved against the recipe).
    pub spec: String,
    /// The recipe's params, over the script's constants.
    pub overrides: Params,
    /// Cap on its candidates.
    pub max_bugs: Option<usize>,
}

/// What `gen` runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct GenSettings {
    /// Seed.
    pub seed: u64,
    /// The strategies; `None`: every procedural one of the catalog.
    pub strategies: Option<Vec<StrategyPlan>>,
    /// Cap per strategy where its plan names none.
    pub max_bugs: Option<usize>,
    /// Only files matching these globs (empty: all).
    pub files: Vec<String>,
    /// Remove earlier procedural candidates first.
    pub clean: bool,
    /// Only entities some test executes.
    pub covered_only: bool,
    /// The model LM strategies call.
    pub lm: LmConfig,
}

impl GenSettings {
    /// Flags over the recipe: `--strategy` replaces the recipe's list (and its params).
    pub fn resolve(flags: &GenFlags, recipe: &Recipe) -> GenSettings {
        let max_bugs = flags.max_bugs.or(recipe.max_bugs);
        let strategies = if !flags.strategies.is_empty() {
            Some(
                flags
                    .strategies
                    .iter()
                    .map(|spec| StrategyPlan { spec: spec.clone(), overrides: Params::default(), max_bugs })
                    .collect(),
            )
        } else if !recipe.strategies.is_empty() {
            Some(
                recipe
                    .strategies
                    .iter()
                    .map(|entry| {
                        let mut overrides = Params(entry.params.clone());
                        if let Some(l) = entry.likelihood {
                            overrides.set("likelihood", l);
                        }
                        if let Some(c) = entry.min_complexity {
                            overrides.set("min_complexity", c);
                        }
                        if let Some(c) = entry.max_complexity {
                            overrides.set("max_complexity", c);
                        }
                        StrategyPlan {
                            spec: recipe.script(&entry.id),
                            overrides,
                            max_bugs: flags.max_bugs.or(entry.max_bugs).or(recipe.max_bugs),
                        }
                    })
                    .collect(),
            )
        } else {
            None
        };
        GenSettings {
            seed: pick(flags.seed, recipe.seed, None, defaults::SEED),
            strategies,
            max_bugs,
            files: flags.files.clone(),
            clean: flags.clean,
            covered_only: flags.covered_only || recipe.covered_only == Some(true),
            lm: lm_config(recipe, &flags.lm),
        }
    }
}

/// `validate`'s flags (and `run`'s that reach it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValidateFlags {
    /// `--backend`.
    pub backend: Option<BackendKind>,
    /// `-j`.
    pub jobs: Option<usize>,
    /// `--timeout` seconds per candidate.
    pub timeout: Option<u64>,
    /// `--recycle-after`.
    pub recycle_after: Option<usize>,
    /// `--candidates`: a folder other than `bug_gen/<repo_name>`.
    pub candidates: Option<PathBuf>,
    /// Containment flags.
    pub sandbox: SandboxFlags,
    /// `--select`.
    pub select: Option<Selector>,
    /// `--exact`.
    pub exact: bool,
    /// `--verify P`.
    pub verify: Option<f64>,
    /// `--seed` (which candidates the verify sample takes).
    pub seed: Option<u64>,
}

/// What `validate` runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidateSettings {
    /// Where.
    pub backend: BackendKind,
    /// Workers.
    pub jobs: usize,
    /// Seconds per candidate (`None`: the profile's).
    pub timeout: Option<u64>,
    /// Candidates a worker validates before it is replaced.
    pub recycle_after: usize,
    /// Candidates folder, when not `bug_gen/<repo_name>`.
    pub candidates: Option<PathBuf>,
    /// Sandbox and limits.
    pub containment: Containment,
    /// Which tests a candidate runs (`covering` falls back to `all` without coverage).
    pub select: Selector,
    /// P2P from a full second run.
    pub exact: bool,
    /// Percent of candidates checked against the full suite (0–100).
    pub verify: f64,
    /// Seed of the verify sample.
    pub seed: u64,
    /// No candidate starts after this (a campaign's time budget); the rest are left.
    pub deadline: Option<std::time::Instant>,
}

impl ValidateSettings {
    /// Flags over the recipe's `validate:` (and `backend:`, `sandbox:`) over the defaults.
    pub fn resolve(flags: &ValidateFlags, recipe: &Recipe) -> ValidateSettings {
        ValidateSettings {
            backend: backend(flags.backend, recipe),
            jobs: pick(flags.jobs, recipe.validate.jobs, None, defaults::jobs()).max(1),
            timeout: flags.timeout.or(recipe.validate.timeout),
            recycle_after: pick(flags.recycle_after, recipe.validate.recycle_after, None, defaults::RECYCLE_AFTER)
                .max(1),
            candidates: flags.candidates.clone(),
            containment: containment(&flags.sandbox, recipe),
            select: pick(flags.select, recipe.validate.select, None, Selector::Covering),
            exact: flags.exact || recipe.validate.exact == Some(true),
            verify: pick(flags.verify, recipe.validate.verify, None, defaults::VERIFY_PERCENT).clamp(0.0, 100.0),
            seed: pick(flags.seed, recipe.seed, None, defaults::SEED),
            deadline: None,
        }
    }
}

/// What `gather` runs with.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GatherSettings {
    /// Remote the mirror's branches are pushed to.
    pub push: Option<String>,
}

impl GatherSettings {
    /// `--push` over the recipe's `gather.push`.
    pub fn resolve(push: Option<String>, recipe: &Recipe) -> GatherSettings {
        GatherSettings { push: push.or(recipe.gather.push.clone()) }
    }
}

/// `issue-gen`'s flags.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IssueFlags {
    /// `--template`.
    pub template: Option<String>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--redo`.
    pub redo: bool,
    /// `--lm-*`.
    pub lm: LmFlags,
}

/// What `issue-gen` runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct IssueSettings {
    /// Template id or path.
    pub template: String,
    /// Seed.
    pub seed: u64,
    /// Render again even where a statement exists.
    pub redo: bool,
    /// The recipe's `issues.params`.
    pub params: Params,
    /// The model templates call.
    pub lm: LmConfig,
}

impl IssueSettings {
    /// Flags over the recipe's `issues:` (its seed, else the recipe's) over the defaults.
    pub fn resolve(flags: &IssueFlags, recipe: &Recipe) -> IssueSettings {
        IssueSettings {
            template: pick(
                flags.template.clone(),
                recipe.issues.template.as_deref().map(|t| recipe.script(t)),
                None,
                defaults::TEMPLATE.into(),
            ),
            seed: pick(flags.seed, recipe.issues.seed.or(recipe.seed), None, defaults::SEED),
            redo: flags.redo,
            params: Params(recipe.issues.params.clone()),
            lm: lm_config(recipe, &flags.lm),
        }
    }
}

/// `mirror`'s flags.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MirrorFlags {
    /// `--from`: `history` or `github`.
    pub from: Option<String>,
    /// `--github-repo`.
    pub github_repo: Option<String>,
    /// `--github-api`.
    pub github_api: Option<String>,
    /// `--limit`.
    pub limit: Option<usize>,
    /// `--strategy`.
    pub strategy: Option<String>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--lm-*`.
    pub lm: LmFlags,
}

/// What `mirror` runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct MirrorSettings {
    /// `history` or `github`.
    pub from: String,
    /// GitHub `owner/name`.
    pub github_repo: Option<String>,
    /// GitHub's API base URL.
    pub github_api: String,
    /// At most this many changes.
    pub limit: usize,
    /// Mirror script id or path.
    pub strategy: String,
    /// Seed.
    pub seed: u64,
    /// The model a rewriting script calls.
    pub lm: LmConfig,
}

impl MirrorSettings {
    /// Flags over the recipe's `mirror:` (and its seed) over the defaults.
    pub fn resolve(flags: &MirrorFlags, recipe: &Recipe) -> MirrorSettings {
        let section = recipe.mirror.clone().unwrap_or_default();
        MirrorSettings {
            from: pick(flags.from.clone(), section.from, None, defaults::MIRROR_FROM.into()),
            github_repo: flags.github_repo.clone().or(section.github_repo),
            github_api: pick(flags.github_api.clone(), None, None, defaults::GITHUB_API.into()),
            limit: pick(flags.limit, section.limit, None, defaults::MIRROR_LIMIT),
            strategy: pick(
                flags.strategy.clone(),
                section.strategy.as_deref().map(|s| recipe.script(s)),
                None,
                defaults::MIRROR_SCRIPT.into(),
            ),
            seed: pick(flags.seed, recipe.seed, None, defaults::SEED),
            lm: lm_config(recipe, &flags.lm),
        }
    }
}

/// `combine`'s flags.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CombineFlags {
    /// `--strategy` (ids or paths).
    pub strategies: Vec<String>,
    /// `--seed`.
    pub seed: Option<u64>,
}

/// What `combine` runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct CombineSettings {
    /// The scripts with their params.
    pub scripts: Vec<(String, Params)>,
    /// Seed.
    pub seed: u64,
}

impl CombineSettings {
    /// `--strategy` replaces the recipe's `combine:` list; the default script when neither.
    pub fn resolve(flags: &CombineFlags, recipe: &Recipe) -> CombineSettings {
        let scripts = if !flags.strategies.is_empty() {
            flags.strategies.iter().map(|s| (s.clone(), Params::default())).collect()
        } else if !recipe.combine.is_empty() {
            recipe.combine.iter().map(|c| (recipe.script(&c.id), Params(c.params.clone()))).collect()
        } else {
            vec![(defaults::COMBINE_SCRIPT.to_string(), Params::default())]
        };
        CombineSettings { scripts, seed: pick(flags.seed, recipe.seed, None, defaults::SEED) }
    }
}

/// `eval`'s and `serve`'s flags about where instances run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunnerFlags {
    /// `--backend`.
    pub backend: Option<BackendKind>,
    /// `-j`.
    pub jobs: Option<usize>,
    /// Containment flags.
    pub sandbox: SandboxFlags,
}

/// Where `eval` and `serve` run instances.
#[derive(Clone, Debug, PartialEq)]
pub struct RunnerSettings {
    /// Where.
    pub backend: BackendKind,
    /// Workers.
    pub jobs: usize,
    /// Sandbox and limits.
    pub containment: Containment,
}

impl RunnerSettings {
    /// The flags over the defaults (these commands take no recipe).
    pub fn resolve(flags: &RunnerFlags) -> RunnerSettings {
        let recipe = Recipe::default();
        RunnerSettings {
            backend: backend(flags.backend, &recipe),
            jobs: pick(flags.jobs, None, None, defaults::jobs()).max(1),
            containment: containment(&flags.sandbox, &recipe),
        }
    }
}

/// `run`'s flags: its own and the stage flags it passes on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunFlags {
    /// `--force`: redo every stage.
    pub force: bool,
    /// `--redo STAGE`.
    pub redo: Vec<String>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--backend`.
    pub backend: Option<BackendKind>,
    /// `-j`.
    pub jobs: Option<usize>,
    /// Containment flags.
    pub sandbox: SandboxFlags,
    /// `--lm-*`.
    pub lm: LmFlags,
}

impl RunFlags {
    /// The flags `gen` gets.
    pub fn gen_flags(&self) -> GenFlags {
        GenFlags { seed: self.seed, lm: self.lm.clone(), ..GenFlags::default() }
    }

    /// The flags `validate` gets.
    pub fn validate_flags(&self) -> ValidateFlags {
        ValidateFlags {
            backend: self.backend,
            jobs: self.jobs,
            sandbox: self.sandbox.clone(),
            ..ValidateFlags::default()
        }
    }

    /// The flags `issue-gen` gets.
    pub fn issue_flags(&self) -> IssueFlags {
        IssueFlags { seed: self.seed, lm: self.lm.clone(), ..IssueFlags::default() }
    }

    /// The flags `mirror` gets.
    pub fn mirror_flags(&self) -> MirrorFlags {
        MirrorFlags { seed: self.seed, lm: self.lm.clone(), ..MirrorFlags::default() }
    }

    /// The flags `combine` gets.
    pub fn combine_flags(&self) -> CombineFlags {
        CombineFlags { seed: self.seed, ..CombineFlags::default() }
    }
}

/// Reads a duration: `90m`, `2h 30m`, `45s`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(seconds));
    }
    humantime::parse_duration(text).map_err(|e| format!("`{text}` is not a duration ({e}; e.g. 90m, 2h, 45s)"))
}

/// Parses `K/N` (1 ≤ K ≤ N).
pub fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    let (k, n) = text.split_once('/').ok_or_else(|| format!("--shard {text}: expected K/N, e.g. 1/2"))?;
    let (k, n) = (k.trim().parse::<usize>(), n.trim().parse::<usize>());
    match (k, n) {
        (Ok(k), Ok(n)) if (1..=n).contains(&k) => Ok((k, n)),
        _ => Err(format!("--shard {text}: expected K/N with 1 ≤ K ≤ N (shards count from 1)")),
    }
}

/// Where `campaign --emit` writes jobs for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitKind {
    /// An sbatch array script and a dependent merge job.
    Slurm,
    /// A Kubernetes Indexed Job and a merge Job.
    K8s,
}

/// `campaign`'s flags.
#[derive(Clone, Debug, Default)]
pub struct CampaignFlags {
    /// `--out` (over the file's `out`).
    pub out: Option<PathBuf>,
    /// `--shard K/N`.
    pub shard: Option<(usize, usize)>,
    /// `--time-budget` (over the file's `time_budget`).
    pub time_budget: Option<std::time::Duration>,
    /// `--check`: only read and check the file.
    pub check: bool,
    /// `--emit slurm|k8s DIR`.
    pub emit: Option<(EmitKind, PathBuf)>,
    /// What each source's stages get, as `run`'s flags.
    pub run: RunFlags,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(text: &str) -> Recipe {
        Recipe::parse("r.yaml", text).unwrap()
    }

    #[test]
    fn a_flag_beats_the_recipe_which_beats_the_profile_which_beats_the_default() {
        assert_eq!(pick(Some(1), Some(2), Some(3), 4), 1);
        assert_eq!(pick(None, Some(2), Some(3), 4), 2);
        assert_eq!(pick(None, None, Some(3), 4), 3);
        assert_eq!(pick(None::<u32>, None, None, 4), 4);
    }

    #[test]
    fn gen_takes_the_seed_and_caps_from_flags_then_the_recipe() {
        let r =
            recipe("seed: 7\nmax_bugs: 3\nstrategies:\n  - id: a\n    likelihood: 0.5\n    max_bugs: 9\n  - id: b\n");
        let from_recipe = GenSettings::resolve(&GenFlags::default(), &r);
        assert_eq!(from_recipe.seed, 7);
        let plans = from_recipe.strategies.unwrap();
        assert_eq!((plans[0].max_bugs, plans[1].max_bugs), (Some(9), Some(3)));
        assert_eq!(plans[0].overrides.0["likelihood"], serde_json::json!(0.5));
        let flagged = GenSettings::resolve(
            &GenFlags { seed: Some(1), max_bugs: Some(2), strategies: vec!["c".into()], ..GenFlags::default() },
            &r,
        );
        assert_eq!(flagged.seed, 1);
        let plans = flagged.strategies.unwrap();
        assert_eq!((plans.len(), plans[0].spec.as_str(), plans[0].max_bugs), (1, "c", Some(2)));
        let nothing = GenSettings::resolve(&GenFlags::default(), &Recipe::default());
        assert_eq!((nothing.seed, nothing.strategies), (defaults::SEED, None));
    }

    #[test]
    fn jobs_on_the_command_line_beat_the_recipes_jobs() {
        let r = recipe("backend: docker\nsandbox: false\nvalidate:\n  jobs: 3\n  recycle_after: 5\n");
        let from_recipe = ValidateSettings::resolve(&ValidateFlags::default(), &r);
        assert_eq!((from_recipe.jobs, from_recipe.recycle_after, from_recipe.backend), (3, 5, BackendKind::Docker));
        assert!(!from_recipe.containment.sandbox);
        let flagged = ValidateSettings::resolve(
            &ValidateFlags { jobs: Some(1), backend: Some(BackendKind::Local), ..ValidateFlags::default() },
            &r,
        );
        assert_eq!((flagged.jobs, flagged.backend), (1, BackendKind::Local));
        let nothing = ValidateSettings::resolve(&ValidateFlags::default(), &Recipe::default());
        assert_eq!((nothing.recycle_after, nothing.backend), (defaults::RECYCLE_AFTER, BackendKind::Local));
        assert!(nothing.containment.sandbox);
    }

    #[test]
    fn test_selection_comes_from_the_flags_then_the_recipes_validate_section() {
        let r = recipe("seed: 3\nvalidate:\n  select: all\n  verify: 20\n  exact: true\n");
        let from_recipe = ValidateSettings::resolve(&ValidateFlags::default(), &r);
        assert_eq!(
            (from_recipe.select, from_recipe.verify, from_recipe.exact, from_recipe.seed),
            (Selector::All, 20.0, true, 3)
        );
        let flags = ValidateFlags { select: Some(Selector::Covering), verify: Some(150.0), ..ValidateFlags::default() };
        let flagged = ValidateSettings::resolve(&flags, &r);
        assert_eq!((flagged.select, flagged.verify), (Selector::Covering, 100.0));
        let nothing = ValidateSettings::resolve(&ValidateFlags::default(), &Recipe::default());
        assert_eq!(
            (nothing.select, nothing.verify, nothing.exact),
            (Selector::Covering, defaults::VERIFY_PERCENT, false)
        );
    }

    #[test]
    fn issue_settings_take_the_flags_then_the_issues_section_then_the_recipe_seed() {
        let r = recipe("seed: 7\nissues:\n  template: from_test\n");
        let resolved = IssueSettings::resolve(&IssueFlags::default(), &r);
        assert_eq!((resolved.template.as_str(), resolved.seed), ("from_test", 7));
        let flagged = IssueSettings::resolve(
            &IssueFlags { template: Some("lm".into()), seed: Some(1), ..IssueFlags::default() },
            &r,
        );
        assert_eq!((flagged.template.as_str(), flagged.seed), ("lm", 1));
        let own_seed = recipe("seed: 7\nissues:\n  seed: 9\n");
        assert_eq!(IssueSettings::resolve(&IssueFlags::default(), &own_seed).seed, 9);
        let empty = IssueSettings::resolve(&IssueFlags::default(), &Recipe::default());
        assert_eq!((empty.template.as_str(), empty.seed), ("static", 24));
    }

    #[test]
    fn mirror_settings_take_the_flags_then_the_mirror_section_then_the_defaults() {
        let r = recipe("seed: 5\nmirror:\n  from: github\n  github_repo: o/n\n  limit: 3\n");
        let resolved = MirrorSettings::resolve(&MirrorFlags::default(), &r);
        assert_eq!(
            (resolved.from.as_str(), resolved.github_repo.as_deref(), resolved.limit, resolved.seed),
            ("github", Some("o/n"), 3, 5)
        );
        assert_eq!((resolved.strategy.as_str(), resolved.github_api.as_str()), ("pr_mirror", defaults::GITHUB_API));
        let flags = MirrorFlags {
            from: Some("history".into()),
            limit: Some(10),
            strategy: Some("mine".into()),
            seed: Some(1),
            ..MirrorFlags::default()
        };
        let flagged = MirrorSettings::resolve(&flags, &r);
        assert_eq!(
            (flagged.from.as_str(), flagged.limit, flagged.strategy.as_str(), flagged.seed),
            ("history", 10, "mine", 1)
        );
    }

    #[test]
    fn combine_takes_the_recipes_seed_unless_a_flag_gives_one() {
        let r = recipe("seed: 11\ncombine:\n  - id: combine_module\n");
        let resolved = CombineSettings::resolve(&CombineFlags::default(), &r);
        assert_eq!((resolved.seed, resolved.scripts[0].0.as_str()), (11, "combine_module"));
        let flagged = CombineSettings::resolve(&CombineFlags { seed: Some(2), strategies: vec!["x".into()] }, &r);
        assert_eq!((flagged.seed, flagged.scripts[0].0.as_str()), (2, "x"));
        let empty = CombineSettings::resolve(&CombineFlags::default(), &Recipe::default());
        assert_eq!((empty.seed, empty.scripts[0].0.as_str()), (defaults::SEED, defaults::COMBINE_SCRIPT));
    }

    #[test]
    fn model_flags_override_the_recipes_lm_section() {
        let r = recipe("lm:\n  model: small\n  concurrency: 2\n");
        let config = lm_config(&r, &LmFlags::default());
        assert_eq!((config.model.as_str(), config.concurrency), ("small", 2));
        let flags = LmFlags { model: Some("big".into()), replay: true, ..LmFlags::default() };
        let config = lm_config(&r, &flags);
        assert_eq!((config.model.as_str(), config.concurrency, config.replay), ("big", 2, true));
    }

    #[test]
    fn run_passes_its_stage_flags_on() {
        let flags =
            RunFlags { seed: Some(3), jobs: Some(1), backend: Some(BackendKind::Docker), ..RunFlags::default() };
        let r = recipe("seed: 9\nvalidate:\n  jobs: 4\n");
        assert_eq!(GenSettings::resolve(&flags.gen_flags(), &r).seed, 3);
        let validate = ValidateSettings::resolve(&flags.validate_flags(), &r);
        assert_eq!((validate.jobs, validate.backend), (1, BackendKind::Docker));
        assert_eq!(CombineSettings::resolve(&flags.combine_flags(), &r).seed, 3);
        assert_eq!(IssueSettings::resolve(&flags.issue_flags(), &r).seed, 3);
    }
}
