//! Command-line arguments (clap): the only module that names clap; nothing else happens here.

use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand};

/// Turn a Python repository into validated SWE-bench-style task instances.
#[derive(Debug, Parser)]
#[command(name = "bugsmith", version, about)]
pub struct Args {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, ClapArgs)]
pub struct Global {
    /// Folder of scripts overlaying the built-in ones by id (as do ./strategies and $BUGSMITH_STRATEGIES).
    #[arg(long, global = true, value_name = "DIR")]
    pub strategies_dir: Option<PathBuf>,
    /// Only the scripts of the folders, none of the built-in ones.
    #[arg(long, global = true)]
    pub no_builtin: bool,
    /// Cache for checkouts and downloaded sdists (default: $BUGSMITH_CACHE or ~/.cache/bugsmith).
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long, short = 'j', global = true, value_name = "N")]
    pub jobs: Option<usize>,
    /// More on stderr: -v progress, -vv details (everything goes to <out>/bugsmith.log anyway).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr (no status lines or warnings).
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Docker daemon for the docker backend (repeatable: workers are spread over the daemons,
    /// each gets the image): unix:///path, tcp://host:port (TLS with DOCKER_CERT_PATH), ssh://user@host.
    #[arg(long, global = true, value_name = "URL")]
    pub docker_host: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate candidate bugs for a repository with procedural strategies.
    Gen(GenArgs),
    /// Print the diffs a strategy makes on one Python file.
    Try(TryArgs),
    /// List or check the strategy scripts.
    Strategies {
        #[command(subcommand)]
        action: StrategiesAction,
    },
    /// Write a profile (install and test commands) for a source, without any language model.
    Profile {
        #[command(subcommand)]
        action: ProfileAction,
    },
    /// Build the test environment of a profile.
    Env {
        #[command(subcommand)]
        action: EnvAction,
    },
    /// Run the tests of every candidate and record F2P/P2P reports.
    Validate(ValidateArgs),
    /// Turn valid reports into task instances and a mirror repository with a branch each.
    Gather(GatherArgs),
    /// Write problem statements into the task instances with an issue template.
    #[command(name = "issue-gen")]
    IssueGen(IssueGenArgs),
    /// Merge validated bugs into multi-bug candidates with combine scripts.
    Combine(CombineArgs),
    /// Undo real changes (commits from the history, or merged GitHub pull requests).
    Mirror(MirrorArgs),
    /// Run every stage a recipe names (env, gen, validate, gather, combine, issues); resumable.
    Run(RunArgs),
    /// Run many sources from a campaign file through every stage into one dataset; resumable,
    /// shardable, with a time budget; or check the file, or write Slurm or Kubernetes jobs.
    Campaign(CampaignArgs),
    /// Join campaign outputs (shards) into one dataset: instances, mirrors, ledgers, campaign.json.
    Merge(MergeArgs),
    /// Yield per strategy from the validation reports under output folders (runs, campaigns).
    Stats {
        /// Output folders (default `logs`).
        #[arg(default_value = "logs")]
        outputs: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List or show the candidates under an output directory.
    Candidates {
        #[command(subcommand)]
        action: CandidatesAction,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print bugsmith's man page (roff) to stdout.
    Man,
    /// Manage bugsmith's Docker containers.
    Docker {
        #[command(subcommand)]
        action: DockerAction,
    },
    /// Score predictions (model patches, or `gold`) on task instances, as SWE-bench grades them.
    Eval(EvalArgs),
    /// Serve evaluations over HTTP (`POST /v1/evaluate`) from warm workers, for reward loops.
    Serve(ServeArgs),
    /// Write instances or profiles in the formats other tools read.
    Export {
        #[command(subcommand)]
        action: ExportAction,
    },
    /// Check recipes.
    Recipe {
        #[command(subcommand)]
        action: RecipeAction,
    },
}

#[derive(Debug, ClapArgs)]
pub struct RunArgs {
    /// The recipe.
    pub recipe: PathBuf,
    /// Redo every stage, finished or not.
    #[arg(long)]
    pub force: bool,
    /// Redo this stage (repeatable): env, gen, mirror, validate, gather, combine, issues.
    #[arg(long = "redo", value_name = "STAGE")]
    pub redo: Vec<String>,
    /// Seed (over the recipe's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where tests run (over the recipe's `backend`).
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    #[command(flatten)]
    pub lm: LmArgs,
}

#[derive(Debug, ClapArgs)]
pub struct CampaignArgs {
    /// The campaign file.
    pub file: PathBuf,
    /// Output directory (over the file's `out`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run shard K of N (1-based): every N-th source, starting at the K-th.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Wall-clock budget (`90m`, `2h`): each source gets a fair share of what is left; then
    /// what is valid is gathered and the rest left for the next run.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub time_budget: Option<std::time::Duration>,
    /// Only read and check the file (unknown keys, values) and list its sources.
    #[arg(long)]
    pub check: bool,
    /// Write cluster jobs instead of running: `--emit slurm DIR` or `--emit k8s DIR`.
    #[arg(long, num_args = 2, value_names = ["KIND", "DIR"])]
    pub emit: Vec<String>,
    /// Seed (over the file's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where tests run (over the file's `backend`).
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// Redo every stage of every source.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    #[command(flatten)]
    pub lm: LmArgs,
}

#[derive(Debug, ClapArgs)]
pub struct MergeArgs {
    /// Campaign output directories (one per shard).
    #[arg(required = true)]
    pub outputs: Vec<PathBuf>,
    /// Where the merged dataset goes.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    crate::settings::parse_shard(text)
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::settings::parse_duration(text)
}

/// How tests are contained (every command that runs tests takes these).
#[derive(Debug, Clone, ClapArgs)]
pub struct SandboxArgs {
    /// Local backend: run tests without the sandbox (as this user, with its network and files).
    #[arg(long)]
    pub no_sandbox: bool,
    /// Memory for a worker's tests (`4g`, `512m`; default: the profile's `limits:`, else 4g).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<u64>,
    /// Processes and threads for a worker's tests (default: the profile's, else 1024).
    #[arg(long, value_name = "N")]
    pub pids: Option<u64>,
    /// Largest file the tests may write (default: the profile's, else 1g).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub file_size: Option<u64>,
    /// Temporary space per candidate: /tmp, $HOME, $TMPDIR (default: the profile's, else 1g).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub tmp: Option<u64>,
}

fn parse_size(text: &str) -> Result<u64, crate::profile::SizeError> {
    crate::profile::parse_size(text)
}

#[derive(Debug, Subcommand)]
pub enum CandidatesAction {
    /// Candidates of every repository under `--out`, with their verdicts where validated.
    List {
        /// Only this strategy.
        #[arg(long)]
        strategy: Option<String>,
        /// Only entities in files matching this glob.
        #[arg(long, value_name = "GLOB")]
        file: Option<String>,
        /// Only this entity (dotted name, or its last part).
        #[arg(long)]
        entity: Option<String>,
        /// Only this verdict (valid, no_test_broken, …; `none`: not validated).
        #[arg(long)]
        verdict: Option<String>,
        /// Output directory.
        #[arg(long, default_value = crate::settings::defaults::OUT, value_name = "DIR")]
        out: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A candidate's metadata and diff (coloured on a terminal).
    Show {
        /// An instance id or the path of a `bug__*.diff`.
        candidate: String,
        /// Output directory.
        #[arg(long, default_value = crate::settings::defaults::OUT, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum DockerAction {
    /// Remove bugsmith containers: by default only those provably stale (made on this host by a
    /// process that is gone); live runs' containers are left unless --all.
    Prune {
        /// Every bugsmith container, live runs' included.
        #[arg(long)]
        all: bool,
        /// Also containers created longer ago than this (`2h`, `1d`), whoever made them.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        older_than: Option<std::time::Duration>,
    },
}

#[derive(Debug, ClapArgs)]
pub struct EvalArgs {
    /// Task instances (`.json` or `.jsonl`).
    pub instances: PathBuf,
    /// Predictions (`.json` or `.jsonl` of instance_id, model_patch, model_name_or_path), or `gold`.
    pub predictions: String,
    /// Profile of a repository (repeatable; default: `<out>/profiles/` and the profiles beside the instances).
    #[arg(long = "profile", value_name = "PROFILE")]
    pub profiles: Vec<PathBuf>,
    /// Name of the run (its folder under run_evaluation/).
    #[arg(long, default_value = crate::settings::defaults::RUN_ID, value_name = "ID")]
    pub run_id: String,
    /// Output directory.
    #[arg(long, default_value = crate::settings::defaults::OUT, value_name = "DIR")]
    pub out: PathBuf,
    /// Where tests run.
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// Only these instances.
    #[arg(long = "instance-ids", value_name = "ID", num_args = 1..)]
    pub instance_ids: Vec<String>,
    /// Evaluate again where a report exists.
    #[arg(long)]
    pub redo: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

#[derive(Debug, ClapArgs)]
pub struct ServeArgs {
    /// Task instances (`.json` or `.jsonl`).
    pub instances: PathBuf,
    /// Profile of a repository (repeatable; default: as for `eval`).
    #[arg(long = "profile", value_name = "PROFILE")]
    pub profiles: Vec<PathBuf>,
    /// Address to listen on; other than loopback only with a token.
    #[arg(long, default_value = crate::settings::defaults::BIND, value_name = "ADDR")]
    pub bind: String,
    /// Environment variable holding the bearer token clients must send.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// Where tests run.
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// Output directory (baselines, profiles).
    #[arg(long, default_value = crate::settings::defaults::OUT, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

#[derive(Debug, Subcommand)]
pub enum ExportAction {
    /// A Python `RepoProfile` subclass that registers the repository with SWE-smith.
    #[command(name = "swesmith-profile")]
    SwesmithProfile {
        /// The profile.
        profile: PathBuf,
        /// The Python file to write.
        #[arg(short = 'o', long = "output", value_name = "FILE.py")]
        output: PathBuf,
    },
    /// Instances for SWE-bench's harness (fix as `patch`, removed tests as `test_patch`), its
    /// spec module, and per-instance images when the agent image exists.
    Swebench {
        /// Task instances (`.json` or `.jsonl`).
        instances: PathBuf,
        /// The JSON Lines file to write (the spec goes beside it, `<stem>_spec.py`).
        #[arg(short = 'o', long = "output", value_name = "OUT.jsonl")]
        output: PathBuf,
        /// Profile of a repository (repeatable; default: as for `eval`).
        #[arg(long = "profile", value_name = "PROFILE")]
        profiles: Vec<PathBuf>,
        /// Output directory the instances came from (mirrors, profiles).
        #[arg(long, default_value = crate::settings::defaults::OUT, value_name = "DIR")]
        out: PathBuf,
        /// Do not build the per-instance images.
        #[arg(long)]
        no_images: bool,
    },
    /// Function-level tasks: for instances that change one function, its signature, docstring and
    /// file with the body removed, the F2P tests and the reference body.
    Functions {
        /// Task instances (`.json` or `.jsonl`).
        instances: PathBuf,
        /// The JSON Lines file to write.
        #[arg(short = 'o', long = "output", value_name = "OUT.jsonl")]
        output: PathBuf,
        /// Output directory the instances came from (mirrors).
        #[arg(long, default_value = crate::settings::defaults::OUT, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Debug, ClapArgs)]
pub struct CombineArgs {
    /// The profile.
    pub profile: PathBuf,
    /// Combine script id or .rhai path (repeatable; default: the recipe's, else combine_file).
    #[arg(long = "strategy", value_name = "ID")]
    pub strategies: Vec<String>,
    /// Recipe with a `combine:` section (params per script).
    #[arg(long, value_name = "RECIPE")]
    pub recipe: Option<PathBuf>,
    /// Seed (default: the recipe's, else 24).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output directory (reads task_insts/, writes bug_gen/).
    #[arg(long, default_value = crate::settings::defaults::OUT, value_name = "DIR")]
    pub out: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, ClapArgs)]
pub struct MirrorArgs {
    /// The profile (its source must have history for `--from history`).
    pub profile: PathBuf,
    /// Recipe with a `mirror:` section (its seed and `lm:` too); flags win over it.
    #[arg(long, value_name = "RECIPE")]
    pub recipe: Option<PathBuf>,
    /// Where changes come from (default: the recipe's, else history).
    #[arg(long, value_enum)]
    pub from: Option<ChangeSource>,
    /// GitHub repository `owner/name` (for `--from github`).
    #[arg(long, value_name = "OWNER/NAME")]
    pub github_repo: Option<String>,
    /// GitHub API base URL [default: GitHub's].
    #[arg(long, value_name = "URL")]
    pub github_api: Option<String>,
    /// At most this many changes (default: the recipe's, else 50).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Mirror script id or .rhai path (default: the recipe's, else pr_mirror).
    #[arg(long)]
    pub strategy: Option<String>,
    /// Seed (default: the recipe's, else 24).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output directory.
    #[arg(long, default_value = crate::settings::defaults::OUT, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub lm: LmArgs,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where PR-mirror changes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ChangeSource {
    /// Commits of the checkout's own history.
    History,
    /// Merged pull requests, through GitHub's REST API (token from $GITHUB_TOKEN).
    Github,
}

#[derive(Debug, Subcommand)]
pub enum RecipeAction {
    /// Check a recipe: keys, values, scripts it names, its profile or source.
    Check {
        /// The recipe.
        recipe: PathBuf,
    },
}

#[derive(Debug, ClapArgs)]
pub struct IssueGenArgs {
    /// The profile.
    pub profile: PathBuf,
    /// Recipe with an `issues:` section (template, seed, params; its `lm:` too); flags win.
    #[arg(long, value_name = "RECIPE")]
    pub recipe: Option<PathBuf>,
    /// Template id (under strategies/issues/) or path to a .rhai file (default: the recipe's, else static).
    #[arg(long)]
    pub template: Option<String>,
    /// Output directory (reads task_insts/, writes issue_gen/).
    #[arg(long, default_value = crate::settings::defaults::OUT, value_name = "DIR")]
    pub out: PathBuf,
    /// Seed for the templates' random choices (default: the recipe's, else 24).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write statements again even where one from the same template and seed exists.
    #[arg(long)]
    pub redo: bool,
    #[command(flatten)]
    pub lm: LmArgs,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Language-model settings (the key comes from the environment variable named by --lm-key-env).
#[derive(Debug, Default, Clone, ClapArgs)]
pub struct LmArgs {
    /// Model name.
    #[arg(long = "lm-model", value_name = "MODEL")]
    pub model: Option<String>,
    /// OpenAI-compatible base URL (`…/v1`).
    #[arg(long = "lm-base-url", value_name = "URL")]
    pub base_url: Option<String>,
    /// Environment variable with the API key (default OPENAI_API_KEY).
    #[arg(long = "lm-key-env", value_name = "VAR")]
    pub key_env: Option<String>,
    /// Stop calling the model once this many dollars are spent.
    #[arg(long = "lm-budget", value_name = "USD")]
    pub budget: Option<f64>,
    /// Requests to the model in flight at once (default 4).
    #[arg(long = "lm-concurrency", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: Option<u16>,
    /// Answer only from the response cache.
    #[arg(long = "lm-replay")]
    pub replay: bool,
}

#[derive(Debug, ClapArgs)]
pub struct GatherArgs {
    /// The profile.
    pub profile: PathBuf,
    /// Output directory (reads run_validation/, writes task_insts/ and mirrors/).
    #[arg(long, default_value = crate::settings::defaults::OUT, value_name = "DIR")]
    pub out: PathBuf,
    /// Push main and the instance branches to this remote (URL or path); a token for HTTPS
    /// remotes is read from $GITHUB_TOKEN and never printed.
    #[arg(long, value_name = "REMOTE")]
    pub push: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ProfileAction {
    /// Detect install and test commands for a source and write a profile.
    Init {
        /// A local directory, a git URL (URL[@revision]) or pypi:NAME==VERSION.
        source: String,
        /// Where to write the profile.
        #[arg(short = 'o', long = "output", value_name = "PROFILE.yaml")]
        output: PathBuf,
        /// Organisation the instances and images are named under (SWE-smith's org_gh/org_dh).
        #[arg(long, default_value = crate::profile::DEFAULT_ORG, value_name = "ORG")]
        org: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnvAction {
    /// Build (or find) the environment; skipped when one for the same profile content exists.
    Build {
        /// The profile.
        profile: PathBuf,
        /// Where to build.
        #[arg(long, value_enum, default_value_t = BackendKind::Local)]
        backend: BackendKind,
        /// Output directory (the build log goes under build_images/env/<repo_name>/).
        #[arg(long, default_value = crate::settings::defaults::OUT, value_name = "DIR")]
        out: PathBuf,
    },
}

/// Which tests a candidate runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SelectArg {
    /// The tests that execute the changed code.
    Covering,
    /// The whole suite.
    All,
}

/// Where tests run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum BackendKind {
    /// Virtualenvs and private checkouts on this machine.
    Local,
    /// Containers (Docker daemon at DOCKER_HOST or the local socket).
    Docker,
}

#[derive(Debug, ClapArgs)]
pub struct ValidateArgs {
    /// The profile.
    pub profile: PathBuf,
    /// Candidate folder (default: <out>/bug_gen/<repo_name>).
    #[arg(long, value_name = "DIR")]
    pub candidates: Option<PathBuf>,
    /// Output directory.
    #[arg(long, default_value = crate::settings::defaults::OUT, value_name = "DIR")]
    pub out: PathBuf,
    /// Where tests run [default: the recipe's, else local].
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// Seconds a candidate's tests may run (default: the profile's, else max(20, 5 × baseline)).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Replace a worker after this many candidates.
    #[arg(long, value_name = "N")]
    pub recycle_after: Option<usize>,
    /// Tests each candidate runs: those that execute its changes (from the baseline's per-test
    /// coverage; pytest only) or all [default: covering, all without coverage].
    #[arg(long, value_enum)]
    pub select: Option<SelectArg>,
    /// With `--select covering`: take P2P from a second, full-suite run of each candidate that
    /// breaks a test (default: the baseline's passing tests less F2P and flaky ones).
    #[arg(long)]
    pub exact: bool,
    /// Percent of candidates also run through the full suite to check the selection [default: 5].
    #[arg(long, value_name = "P")]
    pub verify: Option<f64>,
    /// Seed of the verify sample [default: 24].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

#[derive(Debug, ClapArgs)]
pub struct GenArgs {
    /// A local directory, a git URL (URL[@revision]), pypi:NAME==VERSION, or a profile file.
    pub source: String,
    /// YAML recipe choosing strategies, params, max_bugs and seed.
    #[arg(long, value_name = "RECIPE")]
    pub recipe: Option<PathBuf>,
    /// Strategy id or .rhai path (repeatable; default: every procedural strategy).
    #[arg(long = "strategy", value_name = "ID")]
    pub strategies: Vec<String>,
    /// Seed for sampling and the strategies' random streams (default 24).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Cap on candidates per strategy.
    #[arg(long, value_name = "N")]
    pub max_bugs: Option<usize>,
    /// Only files matching this glob (repeatable; e.g. `src/pkg/*.py`, `**/parser*.py`).
    #[arg(long = "file", value_name = "GLOB")]
    pub files: Vec<String>,
    /// Remove the repository's procedural candidates of earlier runs (not combined or mirrored ones).
    #[arg(long)]
    pub clean: bool,
    /// Skip entities no test executes (from the baseline's per-test coverage under --out; run
    /// `validate` once first).
    #[arg(long)]
    pub covered_only: bool,
    /// Output directory.
    #[arg(long, default_value = crate::settings::defaults::OUT, value_name = "DIR")]
    pub out: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub lm: LmArgs,
}

#[derive(Debug, Clone, ClapArgs)]
pub struct TryArgs {
    /// Strategy id or path to a .rhai file (with --instance: an issue template).
    pub strategy: String,
    /// The Python file to mutate.
    #[arg(required_unless_present = "instance")]
    pub file: Option<PathBuf>,
    /// Render the issue template for this validated instance instead (from `<out>/task_insts/`).
    #[arg(long, value_name = "INSTANCE_ID", conflicts_with = "file")]
    pub instance: Option<String>,
    /// Output directory holding the instance (with --instance).
    #[arg(long, default_value = crate::settings::defaults::OUT, value_name = "DIR")]
    pub out: PathBuf,
    /// The instance's profile (default: the one under `<out>/profiles/` whose repository it is).
    #[arg(long, value_name = "PROFILE", requires = "instance")]
    pub profile: Option<PathBuf>,
    /// Only this entity (name or dotted name), whatever its tags.
    #[arg(long)]
    pub entity: Option<String>,
    /// Seed (default 24).
    #[arg(long, default_value_t = crate::settings::defaults::SEED)]
    pub seed: u64,
    /// Run on every entity, ignoring the strategy's conditions and complexity bounds.
    #[arg(long)]
    pub all_entities: bool,
    /// Re-run whenever the script or the file changes.
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Subcommand)]
pub enum StrategiesAction {
    /// List scripts with where each comes from (strategies: conditions and defaults).
    List {
        /// Kind of script (folder under strategies/): procedural, lm, combine, mirror, issues.
        #[arg(long, default_value = "procedural")]
        kind: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the built-in scripts (with their prompts) into DIR for editing; existing files stay.
    Export {
        /// Where to write them (e.g. ./strategies, which then overlays the built-ins).
        dir: PathBuf,
    },
    /// Check that every script loads and declares what it must.
    Check,
}

/// Writes the completion script for `shell` (generated from these definitions).
pub fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    let mut command = <Args as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut command, "bugsmith", out);
}

/// Writes the man page (generated from these definitions).
pub fn man_page(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    clap_mangen::Man::new(<Args as clap::CommandFactory>::command()).render(out)
}
