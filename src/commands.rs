//! The subcommands: glue between the command line, the settings sources (flags > recipe >
//! script defaults) and the library modules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rhai::{Dynamic, Map};

use crate::ast::SourceFile;
use crate::backend::Backend;
use crate::backend::Containment;
use crate::backend::docker::DockerBackend;
use crate::backend::local::LocalBackend;
use crate::bug_gen::{self, Outcome, Plan, Problem, Report};
use crate::cli::{
    Args, BackendKind, ChangeSource, CombineArgs, Command, DockerAction, EnvAction, EvalArgs, ExportAction, GatherArgs,
    GenArgs, IssueGenArgs, LmArgs, MirrorArgs, ProfileAction, RecipeAction, RunArgs, SandboxArgs, ServeArgs,
    StrategiesAction, TryArgs, ValidateArgs,
};
use crate::combine;
use crate::eval::Prediction;
use crate::gather;
use crate::issue_gen;
use crate::lm::{LmClient, LmConfig, Usage};
use crate::mirror;
use crate::profile::Profile;
use crate::recipe::Recipe;
use crate::script::combine::CombineScript;
use crate::script::template::IssueTemplate;
use crate::script::{Origin, Strategy, catalog::Catalog};
use crate::source::Checkout;
use crate::source::{self, SourceSpec};
use crate::validate;
use crate::{EXIT_FAILURE, EXIT_OK, console};

/// The seed SWE-smith uses by default.
const DEFAULT_SEED: u64 = crate::settings::defaults::SEED;

pub(crate) fn dispatch(args: Args) -> Result<u8, String> {
    let catalog = Catalog::locate(args.global.strategies_dir.as_deref(), args.global.no_builtin);
    if let Some(out) = output_dir(&args.command) {
        crate::log::to_file(out);
    }
    match args.command {
        Command::Gen(gen_args) => gen_command(&catalog, &gen_args, args.global.cache_dir.as_deref()),
        Command::Try(try_args) => try_command(&catalog, &try_args, args.global.cache_dir.as_deref()),
        Command::Strategies { action: StrategiesAction::List { kind, json } } => list_command(&catalog, &kind, json),
        Command::Strategies { action: StrategiesAction::Export { dir } } => {
            let (written, kept) =
                crate::script::catalog::export_builtin(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            println!("wrote {written} built-in files under {} ({kept} already there, left alone)", dir.display());
            Ok(EXIT_OK)
        }
        Command::Strategies { action: StrategiesAction::Check } => check_command(&catalog),
        Command::Profile { action: ProfileAction::Init { source, output, org } } => {
            profile_init_command(&source, &output, &org, args.global.cache_dir.as_deref())
        }
        Command::Env { action: EnvAction::Build { profile, backend, out } } => {
            env_build_command(&profile, backend, &out, args.global.cache_dir.as_deref())
        }
        Command::Validate(validate_args) => {
            validate_command(&validate_args, args.global.jobs, args.global.cache_dir.as_deref())
        }
        Command::Gather(gather_args) => gather_command(&gather_args, args.global.cache_dir.as_deref()),
        Command::IssueGen(issue_args) => issue_gen_command(&catalog, &issue_args, args.global.cache_dir.as_deref()),
        Command::Run(run_args) => run_command(&catalog, &run_args, args.global.jobs, args.global.cache_dir.as_deref()),
        Command::Docker { action: DockerAction::Prune { all, older_than } } => docker_prune_command(all, older_than),
        Command::Candidates { action } => candidates_command(action),
        Command::Completions { shell } => {
            crate::cli::completions(shell, &mut std::io::stdout());
            Ok(EXIT_OK)
        }
        Command::Man => crate::cli::man_page(&mut std::io::stdout()).map(|()| EXIT_OK).map_err(|e| e.to_string()),
        Command::Recipe { action: RecipeAction::Check { recipe } } => recipe_check_command(&catalog, &recipe),
        Command::Combine(combine_args) => combine_command(&catalog, &combine_args, args.global.cache_dir.as_deref()),
        Command::Mirror(mirror_args) => mirror_command(&catalog, &mirror_args, args.global.cache_dir.as_deref()),
        Command::Eval(eval_args) => eval_command(&eval_args, args.global.jobs, args.global.cache_dir.as_deref()),
        Command::Serve(serve_args) => serve_command(&serve_args, args.global.jobs, args.global.cache_dir.as_deref()),
        Command::Export { action } => export_command(&action),
    }
}

/// The output directory a command writes to (where its log goes); `run` opens its own.
fn output_dir(command: &Command) -> Option<&Path> {
    Some(match command {
        Command::Gen(a) => &a.out,
        Command::Validate(a) => &a.out,
        Command::Gather(a) => &a.out,
        Command::IssueGen(a) => &a.out,
        Command::Combine(a) => &a.out,
        Command::Mirror(a) => &a.out,
        Command::Eval(a) => &a.out,
        Command::Serve(a) => &a.out,
        Command::Env { action: EnvAction::Build { out, .. } } => out,
        _ => return None,
    })
}

/// An LM client from flags over a base configuration.
fn lm_client(base: LmConfig, args: &LmArgs, cache: Option<&Path>) -> Result<Arc<LmClient>, String> {
    let mut config = base;
    if let Some(m) = &args.model {
        config.model.clone_from(m);
    }
    if let Some(u) = &args.base_url {
        config.base_url.clone_from(u);
    }
    if let Some(k) = &args.key_env {
        config.api_key_env.clone_from(k);
    }
    if args.budget.is_some() {
        config.budget_usd = args.budget;
    }
    if let Some(n) = args.concurrency {
        config.concurrency = usize::from(n);
    }
    config.replay |= args.replay;
    LmClient::new(config, source::cache_dir(cache).join("lm")).map(Arc::new).map_err(|e| e.to_string())
}

fn issue_gen_command(catalog: &Catalog, args: &IssueGenArgs, cache: Option<&Path>) -> Result<u8, String> {
    let recipe = match &args.recipe {
        Some(path) => Recipe::load(path).map_err(|e| e.to_string())?,
        None => Recipe::default(),
    };
    let settings = recipe.issue_settings(args.template.clone(), args.seed);
    let params: Map = recipe.issues.params.iter().map(|(k, v)| (k.as_str().into(), json_to_dynamic(v))).collect();
    let profile = load_profile(&args.profile)?;
    let checkout = checkout_for(&profile, cache)?;
    let lm = lm_client(recipe.lm.clone().unwrap_or_default(), &args.lm, cache)?;
    let origin = catalog.resolve("issues", &settings.template)?;
    let template = IssueTemplate::load(origin, Some(lm.clone())).map_err(|e| e.to_string())?;
    let bar = console::Bar::new(args.json);
    let summary = issue_gen::issue_gen(
        &profile.repo_name,
        &checkout.root,
        &args.out,
        &template,
        &params,
        settings.seed,
        args.redo,
        lm.config().concurrency,
        &bar,
    );
    bar.finish();
    let summary = summary?;
    write_ledger(&args.out, &lm)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
    } else {
        println!(
            "{} instances: {} statements written, {} kept from before, {} flagged as leaking the answer, {} errors; ${:.4} spent",
            summary.instances,
            summary.written,
            summary.reused,
            summary.leaking,
            summary.errors.len(),
            summary.cost
        );
        for e in summary.errors.iter().take(20) {
            println!("  {e}");
        }
    }
    Ok(if summary.errors.is_empty() { EXIT_OK } else { EXIT_FAILURE })
}

/// Adds this run's token and cost counts to `<out>/lm_ledger.json`.
fn write_ledger(out: &Path, lm: &LmClient) -> Result<(), String> {
    let path = out.join("lm_ledger.json");
    let mut total: std::collections::BTreeMap<String, Usage> =
        std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    for (model, usage) in lm.ledger() {
        let entry = total.entry(model).or_default();
        entry.calls += usage.calls;
        entry.cached += usage.cached;
        entry.prompt_tokens += usage.prompt_tokens;
        entry.completion_tokens += usage.completion_tokens;
        entry.cost += usage.cost;
    }
    if total.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let json = serde_json::to_string_pretty(&total).map_err(|e| e.to_string())?;
    bug_gen::write_atomic(&path, json.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

fn gather_command(args: &GatherArgs, cache: Option<&Path>) -> Result<u8, String> {
    let profile = load_profile(&args.profile)?;
    let checkout = checkout_for(&profile, cache)?;
    let run_dir = args.out.join("run_validation").join(&profile.repo_name);
    let mirror_path = args.out.join("mirrors").join(format!("{}.git", profile.repo_name));
    let mut summary = gather::gather(&profile, &checkout, &run_dir, &args.out, &mirror_path)?;
    summary.agent_environments = agent_environments(&profile, &mirror_path, cache);
    if let Some(remote) = &args.push {
        let mirror = crate::git::Mirror::open_or_create(&mirror_path, &checkout.root).map_err(|e| e.to_string())?;
        let branches = mirror.branches().map_err(|e| e.to_string())?;
        let token = std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty());
        mirror.push(remote, &branches, token.as_deref()).map_err(|e| e.to_string())?;
        console::status(args.json, &format!("pushed {} branches to {remote}", branches.len()));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
    } else {
        println!(
            "{} instances from {} reports ({} new branches) -> {}
mirror: {}",
            summary.instances, summary.reports, summary.new_branches, summary.output, summary.mirror
        );
        for problem in &summary.problems {
            println!("  not gathered: {problem}");
        }
        if !summary.unreadable_ids.is_empty() {
            println!(
                "  {} instances have test ids with spaces, which SWE-smith's pytest log regex cannot read (the exported profile's own parser can): {}",
                summary.unreadable_ids.len(),
                summary.unreadable_ids.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            );
        }
        for line in &summary.agent_environments {
            println!("  {line}");
        }
    }
    Ok(EXIT_OK)
}

/// Refreshes what agents run in after a gather: the Docker image `image_name` when the
/// repository has a validation image, and a mirror clone beside the local virtualenv when it
/// has one. Returns what was done (failures included: the instances are written either way).
fn agent_environments(profile: &Profile, mirror_path: &Path, cache: Option<&Path>) -> Vec<String> {
    let mut done = Vec::new();
    let Ok(mirror) = crate::git::Mirror::open(mirror_path) else { return done };
    let branches = mirror.branch_heads().unwrap_or_default();
    let local = LocalBackend::new(&source::cache_dir(cache));
    match local.refresh_testbed(profile, mirror_path) {
        Ok(Some(dir)) => done.push(format!("local testbed (mirror clone, every branch): {}", dir.display())),
        Ok(None) => {}
        Err(e) => done.push(format!("local testbed not refreshed: {e}")),
    }
    let docker_wanted = std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists();
    if docker_wanted && let Ok(docker) = DockerBackend::connect(Default::default()) {
        if !docker.has_image(&profile.validation_image()) {
            return done;
        }
        match docker.build_agent_image(profile, mirror_path, &branches) {
            Ok(true) => done.push(format!("agent image {} built with {} branches", profile.image_name, branches.len())),
            Ok(false) => done.push(format!("agent image {} is up to date", profile.image_name)),
            Err(e) => done.push(format!("agent image {} not built: {e}", profile.image_name)),
        }
    }
    done
}

fn load_profile(path: &Path) -> Result<Profile, String> {
    Profile::load(path).map_err(|e| e.to_string())
}

/// The profile's checkout, checked against the names the profile recorded.
fn checkout_for(profile: &Profile, cache: Option<&Path>) -> Result<Checkout, String> {
    let spec = SourceSpec::parse(&profile.source).map_err(|e| e.to_string())?;
    let checkout = source::fetch(&spec, &source::cache_dir(cache)).map_err(|e| e.to_string())?;
    if checkout.repo_name != profile.repo_name {
        return Err(format!(
            "the profile's source {} now gives {}, not {} as the profile says: run `bugsmith profile init` again",
            profile.source, checkout.repo_name, profile.repo_name
        ));
    }
    Ok(checkout)
}

fn make_backend(kind: BackendKind, cache: Option<&Path>, containment: Containment) -> Result<Box<dyn Backend>, String> {
    Ok(match kind {
        BackendKind::Local => Box::new(LocalBackend::new(&source::cache_dir(cache)).with_containment(containment)),
        BackendKind::Docker => Box::new(DockerBackend::connect(containment.limits).map_err(|e| e.to_string())?),
    })
}

/// Containment from the flags; a recipe's `sandbox: false` counts as `--no-sandbox`.
fn containment(args: &SandboxArgs, recipe_sandbox: Option<bool>) -> Containment {
    Containment {
        sandbox: !args.no_sandbox && recipe_sandbox != Some(false),
        limits: crate::profile::LimitSettings {
            memory: args.memory,
            pids: args.pids,
            file_size: args.file_size,
            tmp: args.tmp,
        },
    }
}

fn candidates_command(action: crate::cli::CandidatesAction) -> Result<u8, String> {
    use crate::candidates::{CandidateMetadata, Filter};
    use crate::cli::CandidatesAction;
    match action {
        CandidatesAction::List { strategy, file, entity, verdict, out, json } => {
            let file = file
                .map(|g| globset::Glob::new(&g).map(|g| g.compile_matcher()).map_err(|e| format!("--file {g}: {e}")))
                .transpose()?;
            let found = crate::candidates::list(&out, &Filter { strategy, file, entity, verdict });
            if json {
                println!("{}", serde_json::to_string_pretty(&found).unwrap_or_default());
                return Ok(EXIT_OK);
            }
            for c in &found {
                println!(
                    "{:<60} {:<16} {:>4}  {}",
                    c.instance_id,
                    c.verdict.as_deref().unwrap_or("-"),
                    c.lines_changed,
                    match (&c.file, &c.entity) {
                        (Some(f), Some(e)) => format!("{f} {e}"),
                        _ => String::new(),
                    }
                );
            }
            println!("{} candidates", found.len());
            Ok(EXIT_OK)
        }
        CandidatesAction::Show { candidate, out } => {
            let path = crate::candidates::find(&out, &candidate)?;
            let diff = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let metadata_path = path.with_file_name(name.replacen("bug__", "metadata__", 1).replace(".diff", ".json"));
            if let Some(m) = CandidateMetadata::read(&metadata_path) {
                println!("# {} ({})", m.strategy, path.display());
                if let (Some(file), Some(entity)) = (&m.file, &m.entity) {
                    println!("# {entity} in {file}:{}", m.line_start.unwrap_or(0));
                }
                if !m.explanation.is_empty() {
                    println!("# {}", m.explanation);
                }
            }
            console::print_diff(&diff);
            Ok(EXIT_OK)
        }
    }
}

fn docker_prune_command(all: bool, older_than: Option<std::time::Duration>) -> Result<u8, String> {
    let docker = DockerBackend::connect(Default::default()).map_err(|e| e.to_string())?;
    let summary = docker.prune_command(all, older_than);
    for (name, why) in &summary.removed {
        println!("removed {name}: {why}");
    }
    for (name, why) in &summary.kept {
        println!("kept {name}: {why}");
    }
    println!("{} removed, {} kept", summary.removed.len(), summary.kept.len());
    Ok(EXIT_OK)
}

fn profile_init_command(source_text: &str, output: &Path, org: &str, cache: Option<&Path>) -> Result<u8, String> {
    let spec = SourceSpec::parse(source_text).map_err(|e| e.to_string())?;
    console::status(false, &format!("fetching {source_text} …"));
    let checkout = source::fetch(&spec, &source::cache_dir(cache)).map_err(|e| e.to_string())?;
    let profile = Profile::detect(source_text, &checkout, Some(org));
    std::fs::write(output, profile.to_yaml()).map_err(|e| format!("{}: {e}", output.display()))?;
    println!("wrote {} for {}", output.display(), profile.repo_name);
    println!("  install:  {}", profile.install.join(" && "));
    println!("  test_cmd: {} ({:?} results)", profile.test_cmd, profile.log_parser);
    Ok(EXIT_OK)
}

fn env_build_command(path: &Path, kind: BackendKind, out: &Path, cache: Option<&Path>) -> Result<u8, String> {
    let started = Instant::now();
    let profile = load_profile(path)?;
    let checkout = checkout_for(&profile, cache)?;
    let backend = make_backend(kind, cache, Containment::default())?;
    let log_dir = out.join("build_images").join("env").join(&profile.repo_name);
    console::status(false, &format!("building the {} environment of {} …", backend.name(), profile.repo_name));
    let env = backend.build_env(&profile, &checkout, &log_dir).map_err(|e| e.to_string())?;
    println!("environment {env} ready in {:.1} s (log under {})", started.elapsed().as_secs_f64(), log_dir.display());
    Ok(EXIT_OK)
}

fn validate_command(args: &ValidateArgs, jobs: Option<usize>, cache: Option<&Path>) -> Result<u8, String> {
    let profile = load_profile(&args.profile)?;
    let checkout = checkout_for(&profile, cache)?;
    let candidates_dir = args.candidates.clone().unwrap_or_else(|| args.out.join("bug_gen").join(&profile.repo_name));
    let candidates = validate::find_candidates(&candidates_dir, &profile.repo_name);
    if candidates.is_empty() {
        return Err(format!(
            "no candidates (bug__*.diff) under {}: run `bugsmith gen {}` first",
            candidates_dir.display(),
            args.profile.display()
        ));
    }
    let backend = make_backend(args.backend, cache, containment(&args.sandbox, None))?;
    let log_dir = args.out.join("build_images").join("env").join(&profile.repo_name);
    console::status(args.json, &format!("preparing the {} environment …", backend.name()));
    let env = backend.build_env(&profile, &checkout, &log_dir).map_err(|e| e.to_string())?;
    let settings = validate::Settings {
        jobs: jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from)),
        timeout: args.timeout,
        recycle_after: args.recycle_after.max(1),
        run_dir: args.out.join("run_validation").join(&profile.repo_name),
    };
    let bar = console::Bar::new(args.json);
    console::status(args.json, "running the clean baseline …");
    let summary = validate::validate(backend.as_ref(), &profile, &checkout, &env, &candidates, &settings, &bar);
    bar.finish();
    let summary = summary?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
    } else {
        validate::print_validate_summary(&summary);
    }
    Ok(EXIT_OK)
}

fn json_to_dynamic(value: &serde_json::Value) -> Dynamic {
    match value {
        serde_json::Value::Null => Dynamic::UNIT,
        serde_json::Value::Bool(b) => (*b).into(),
        serde_json::Value::Number(n) => n.as_i64().map_or_else(|| n.as_f64().unwrap_or(0.0).into(), Dynamic::from),
        serde_json::Value::String(s) => s.clone().into(),
        serde_json::Value::Array(items) => Dynamic::from_array(items.iter().map(json_to_dynamic).collect()),
        serde_json::Value::Object(map) => {
            Dynamic::from_map(map.iter().map(|(k, v)| (k.as_str().into(), json_to_dynamic(v))).collect())
        }
    }
}

/// Builds the run's plans: CLI strategies (or the recipe's, or every procedural one), with
/// params from the recipe over the scripts' defaults; caps from the CLI over the recipe.
/// Scripts that fail to load are returned as problems; the others still run.
fn plans(
    catalog: &Catalog,
    args: &GenArgs,
    recipe: &Recipe,
    lm_concurrency: usize,
) -> Result<(Vec<Plan>, Vec<Problem>), String> {
    let ids: Vec<String> = if !args.strategies.is_empty() {
        args.strategies.clone()
    } else if !recipe.strategies.is_empty() {
        recipe.strategies.iter().map(|s| s.id.clone()).collect()
    } else {
        catalog.origins("procedural").iter().map(crate::script::catalog::origin_id).collect()
    };
    let mut plans = Vec::new();
    let mut problems = Vec::new();
    for id in &ids {
        let from_recipe = args.strategies.is_empty() && !recipe.strategies.is_empty();
        let origin = catalog.resolve_strategy(&if from_recipe { recipe.script(id) } else { id.clone() })?;
        let strategy = match Strategy::load(catalog.engine(), origin) {
            Ok(strategy) => strategy,
            Err(e) => {
                problems.push(Problem {
                    location: format!("{}:{}:{}", e.path, e.line, e.column),
                    message: format!("{}; strategy skipped", e.message),
                });
                continue;
            }
        };
        let entry = recipe.strategies.iter().find(|s| &s.id == id);
        let mut overrides = Map::new();
        if let Some(e) = entry {
            for (k, v) in &e.params {
                overrides.insert(k.as_str().into(), json_to_dynamic(v));
            }
            if let Some(l) = e.likelihood {
                overrides.insert("likelihood".into(), l.into());
            }
            if let Some(c) = e.min_complexity {
                overrides.insert("min_complexity".into(), c.into());
            }
            if let Some(c) = e.max_complexity {
                overrides.insert("max_complexity".into(), c.into());
            }
        }
        let max_bugs = args.max_bugs.or(entry.and_then(|e| e.max_bugs)).or(recipe.max_bugs);
        // LM strategies wait on the network: as many at once as the client allows.
        let threads = crate::script::catalog::is_lm(&strategy.origin).then_some(lm_concurrency);
        plans.push(Plan { strategy: Arc::new(strategy), overrides, max_bugs, threads });
    }
    if plans.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(format!("no strategy could be loaded:\n  {}", list.join("\n  ")));
    }
    Ok((plans, problems))
}

fn gen_command(catalog: &Catalog, args: &GenArgs, cache: Option<&Path>) -> Result<u8, String> {
    let started = Instant::now();
    let recipe = match &args.recipe {
        Some(path) => Recipe::load(path).map_err(|e| e.to_string())?,
        None => Recipe::default(),
    };
    let seed = args.seed.or(recipe.seed).unwrap_or(DEFAULT_SEED);
    let lm = lm_client(recipe.lm.clone().unwrap_or_default(), &args.lm, cache)?;
    let catalog = catalog.clone_with_lm(Some(lm.clone()));
    let (plans, load_problems) = plans(&catalog, args, &recipe, lm.config().concurrency.max(1))?;
    console::status(args.json, &format!("fetching {} …", args.source));
    let (checkout, excluded) = if is_profile_path(&args.source) {
        let profile = load_profile(Path::new(&args.source))?;
        (checkout_for(&profile, cache)?, profile.exclude_paths)
    } else {
        let spec = SourceSpec::parse(&args.source).map_err(|e| e.to_string())?;
        (source::fetch(&spec, &source::cache_dir(cache)).map_err(|e| e.to_string())?, Vec::new())
    };
    let only = file_globs(&args.files)?;
    let paths: Vec<String> = crate::git::tracked_files(&checkout.root)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|p| bug_gen::is_candidate_source(p) && !excluded.iter().any(|x| p.starts_with(x.as_str())))
        .filter(|p| only.as_ref().is_none_or(|globs| globs.is_match(p)))
        .collect();
    if paths.is_empty() && only.is_some() {
        return Err(format!("no Python source file matches --file {}", args.files.join(" --file ")));
    }
    let bar = console::Bar::new(args.json);
    let (files, skipped) = bug_gen::parse_files(&checkout.root, &paths, &bar);
    let bug_gen = args.out.join("bug_gen").join(&checkout.repo_name);
    let mut report = Report {
        repo_name: checkout.repo_name.clone(),
        files: files.len(),
        skipped_files: skipped,
        output: bug_gen.display().to_string(),
        script_errors: load_problems,
        ..Report::default()
    };
    let candidates = bug_gen::generate(&files, &plans, seed, &bar, &mut report);
    bar.finish();
    bug_gen::write_candidates(&bug_gen, &candidates)
        .map_err(|e| format!("cannot write candidates under {}: {e}", bug_gen.display()))?;
    let other_stages: Vec<String> = ["combine", "mirror"]
        .iter()
        .flat_map(|k| catalog.origins(k))
        .map(|o| crate::script::catalog::origin_id(&o))
        .collect();
    let earlier = bug_gen::earlier_candidates(&bug_gen, &candidates, |s| {
        other_stages.iter().any(|o| o == s) || s.starts_with("pr_")
    });
    if args.clean {
        bug_gen::remove_candidates(&earlier).map_err(|e| format!("cannot remove earlier candidates: {e}"))?;
        report.removed_candidates = earlier.len();
    } else if !earlier.is_empty() {
        report.earlier_candidates = earlier.len();
        console::warn(&format!(
            "{} holds {} candidates from earlier runs besides this run's {}; `validate` takes them all (`gen --clean` removes them)",
            bug_gen.display(),
            earlier.len(),
            candidates.len()
        ));
    }
    report.seconds = started.elapsed().as_secs_f64();
    write_ledger(&args.out, &lm)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        bug_gen::print_gen_summary(&report);
    }
    Ok(EXIT_OK)
}

/// `--file` globs as one matcher (`None`: every file).
fn file_globs(patterns: &[String]) -> Result<Option<globset::GlobSet>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = globset::GlobSetBuilder::new();
    for pattern in patterns {
        set.add(globset::Glob::new(pattern).map_err(|e| format!("--file {pattern}: {e}"))?);
    }
    set.build().map(Some).map_err(|e| e.to_string())
}

/// Whether `gen`'s source names a profile file rather than a source.
fn is_profile_path(source: &str) -> bool {
    (source.ends_with(".yaml") || source.ends_with(".yml")) && Path::new(source).is_file()
}

fn resolve_one(catalog: &Catalog, spec: &str) -> Result<Arc<Strategy>, String> {
    let origin = catalog.resolve("procedural", spec)?;
    Strategy::load(catalog.engine(), origin).map(Arc::new).map_err(|e| e.to_string())
}

fn try_command(catalog: &Catalog, args: &TryArgs, cache: Option<&Path>) -> Result<u8, String> {
    if let Some(instance) = &args.instance {
        return try_template(catalog, args, instance, cache);
    }
    let file = args.file.clone().ok_or("a Python file to mutate (or --instance ID for an issue template)")?;
    let strategy = resolve_one(catalog, &args.strategy)?;
    if !args.watch {
        return try_once(&strategy, args);
    }
    let stamp = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let script_path = match &strategy.origin {
        Origin::File(p) => Some(p.clone()),
        Origin::Builtin(..) => None,
    };
    let watched =
        || -> (Option<SystemTime>, Option<SystemTime>) { (stamp(&file), script_path.as_deref().and_then(stamp)) };
    let mut last = watched();
    let mut changed: Option<String> = None;
    loop {
        console::clear_screen();
        if let Some(what) = &changed {
            println!("# {what} changed; run again");
        }
        if let Some(error) = strategy.refresh() {
            eprintln!("error: {error}");
        } else if let Err(message) = try_once(&strategy, args) {
            eprintln!("error: {message}");
        }
        eprintln!("--- watching {} and {} (Ctrl-C to stop) ---", file.display(), strategy.display_path());
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let now = watched();
            if now != last {
                changed = Some(if now.0 != last.0 { file.display().to_string() } else { strategy.display_path() });
                last = now;
                break;
            }
        }
    }
}

/// `try <template> --instance <id>`: renders the statement (again whenever the template
/// changes, with `--watch`).
fn try_template(catalog: &Catalog, args: &TryArgs, instance: &str, cache: Option<&Path>) -> Result<u8, String> {
    let explicit: Vec<PathBuf> = args.profile.iter().cloned().collect();
    let (profiles, _) = crate::eval::find_profiles(&explicit, &args.out, &args.out.join("task_insts").join("x.json"));
    let profile = profiles
        .into_values()
        .filter(|p| crate::ids::InstanceId::parse(&p.repo_name, instance).is_some())
        .max_by_key(|p| p.repo_name.len())
        .ok_or_else(|| format!("no profile under {} for {instance}", args.out.join("profiles").display()))?;
    let checkout = checkout_for(&profile, cache)?;
    let origin = catalog.resolve("issues", &args.strategy)?;
    let path = match &origin {
        Origin::File(path) => Some(path.clone()),
        Origin::Builtin(..) => None,
    };
    let stamp = || path.as_deref().and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    loop {
        let rendered = IssueTemplate::load(origin.clone(), None).map_err(|e| e.to_string()).and_then(|template| {
            crate::issue_gen::preview(&profile.repo_name, &checkout.root, &args.out, &template, args.seed, instance)
        });
        match rendered {
            Ok((text, leaks)) => {
                println!("{text}");
                if !leaks.is_empty() {
                    println!("# leaks: {}", leaks.join(", "));
                }
            }
            Err(e) if !args.watch => return Err(e),
            Err(e) => eprintln!("error: {e}"),
        }
        if !args.watch {
            return Ok(EXIT_OK);
        }
        eprintln!("--- watching {} (Ctrl-C to stop) ---", crate::script::Strategy::origin_path(&origin));
        let last = stamp();
        while stamp() == last {
            std::thread::sleep(Duration::from_millis(250));
        }
        console::clear_screen();
    }
}

fn try_once(strategy: &Arc<Strategy>, args: &TryArgs) -> Result<u8, String> {
    let Some(file) = &args.file else { return Err("no file".into()) };
    // Diff paths are relative (to the current directory when the file is under it).
    let cwd = std::env::current_dir().unwrap_or_default();
    let relative =
        file.strip_prefix(&cwd).ok().or_else(|| file.file_name().map(Path::new).filter(|_| file.is_absolute()));
    let display = relative.unwrap_or(file).to_string_lossy().replace('\\', "/");
    let bytes = std::fs::read(file).map_err(|e| format!("{display}: {e}"))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| format!("{display}: not UTF-8 (invalid byte at offset {})", e.utf8_error().valid_up_to()))?;
    let file = SourceFile::parse(&display, text).map_err(|e| format!("{display}:{e}"))?;
    let plan = Plan { strategy: strategy.clone(), overrides: Map::new(), max_bugs: None, threads: None };
    let params = plan.params();
    let mut shown = 0;
    let mut skipped = 0;
    for (index, entity) in file.entities().iter().enumerate() {
        if let Some(name) = &args.entity
            && &entity.name != name
            && &entity.qualified_name != name
        {
            continue;
        }
        let applies = plan.strategy.applies_to(&file, index, &params).map_err(|e| e.to_string())?;
        if !applies && !args.all_entities && args.entity.is_none() {
            skipped += 1;
            continue;
        }
        shown += 1;
        let note = if applies { String::new() } else { " [outside the strategy's conditions]".to_string() };
        println!(
            "# {} on {} ({display}:{}, complexity {}){note}",
            plan.strategy.id, entity.qualified_name, entity.line_start, entity.complexity
        );
        match bug_gen::mutate_entity(&plan, &params, &file, index, args.seed) {
            Outcome::Candidate(c) => print!("{}", c.diff),
            Outcome::Nothing { unparsable: 0 } => println!("# no change"),
            Outcome::Nothing { unparsable } => println!("# no change ({unparsable} attempts did not parse)"),
            Outcome::Error(p) => println!("# error: {p}"),
        }
    }
    if let Some(name) = &args.entity
        && shown == 0
    {
        return Err(format!("{display}: no entity named `{name}`"));
    }
    if skipped > 0 {
        println!("# {skipped} entities skipped by the strategy's conditions (use --all-entities to run on them)");
    }
    Ok(EXIT_OK)
}

fn list_command(catalog: &Catalog, kind: &str, json: bool) -> Result<u8, String> {
    use crate::script::catalog::{KINDS, origin_id, origin_source};
    if !KINDS.contains(&kind) {
        return Err(format!("unknown kind `{kind}` (kinds: {})", KINDS.join(", ")));
    }
    let origins = catalog.origins(kind);
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    if kind == "procedural" || kind == "lm" {
        let (strategies, failed) = catalog.load(origins);
        errors = failed;
        for s in &strategies {
            let m = s.meta();
            rows.push(serde_json::json!({
                "id": s.id, "likelihood": m.likelihood, "min_complexity": m.min_complexity,
                "max_complexity": m.max_complexity, "conditions": m.conditions,
                "explanation": m.explanation, "source": origin_source(&s.origin),
            }));
        }
    } else {
        for origin in origins {
            match crate::script::describe(&origin) {
                Ok(description) => rows.push(serde_json::json!({
                    "id": origin_id(&origin), "description": description, "source": origin_source(&origin),
                })),
                Err(e) => errors.push(e),
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
    } else if kind == "procedural" || kind == "lm" {
        println!(
            "{:<28} {:>10} {:>9} {:>9}  {:<40} source",
            "strategy", "likelihood", "min cplx", "max cplx", "conditions"
        );
        for row in &rows {
            let text = |k: &str| row[k].as_str().unwrap_or("").to_string();
            let conditions: Vec<String> = row["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str().map(String::from))
                .collect();
            println!(
                "{:<28} {:>10} {:>9} {:>9}  {:<40} {}",
                text("id"),
                row["likelihood"].as_f64().unwrap_or(0.0),
                row["min_complexity"].as_u64().unwrap_or(0),
                row["max_complexity"].as_u64().map_or("-".to_string(), |c| c.to_string()),
                conditions.join(", "),
                text("source")
            );
        }
    } else {
        println!("{:<28} {:<60} source", kind, "description");
        for row in &rows {
            let text = |k: &str| row[k].as_str().unwrap_or("").to_string();
            println!("{:<28} {:<60} {}", text("id"), text("description"), text("source"));
        }
    }
    for e in &errors {
        eprintln!("error: {e}");
    }
    Ok(if errors.is_empty() { EXIT_OK } else { EXIT_FAILURE })
}

fn check_command(catalog: &Catalog) -> Result<u8, String> {
    let mut origins = catalog.origins("procedural");
    origins.extend(catalog.origins("lm"));
    let (strategies, mut errors) = catalog.load(origins);
    for s in &strategies {
        println!("ok     {}", s.display_path());
    }
    let mut loaded = strategies.len();
    // The other kinds: each is loaded the way its command loads it.
    type Loader = fn(Origin) -> Result<(), crate::script::ScriptError>;
    let kinds: [(&str, Loader); 3] = [
        ("issues", |o| IssueTemplate::load(o, None).map(|_| ())),
        ("mirror", |o| crate::script::combine::RepoScript::load_with(o, "mirror", "change", None).map(|_| ())),
        ("combine", |o| CombineScript::load(o).map(|_| ())),
    ];
    for (kind, load) in kinds {
        for origin in catalog.origins(kind) {
            let path = crate::script::Strategy::origin_path(&origin);
            match load(origin) {
                Ok(()) => {
                    println!("ok     {path}");
                    loaded += 1;
                }
                Err(e) => errors.push(e),
            }
        }
    }
    for e in &errors {
        println!("error  {e}");
    }
    println!("{loaded} scripts load, {} fail", errors.len());
    Ok(if errors.is_empty() { EXIT_OK } else { EXIT_FAILURE })
}

fn mirror_command(catalog: &Catalog, args: &MirrorArgs, cache: Option<&Path>) -> Result<u8, String> {
    let recipe = match &args.recipe {
        Some(path) => Recipe::load(path).map_err(|e| e.to_string())?,
        None => Recipe::default(),
    };
    let from = args.from.map(|f| if f == ChangeSource::Github { "github" } else { "history" }.to_string());
    let settings = recipe.mirror_settings(from, args.github_repo.clone(), args.limit, args.strategy.clone(), args.seed);
    let lm_config = recipe.lm.clone().unwrap_or_default();
    let profile = load_profile(&args.profile)?;
    let checkout = checkout_for(&profile, cache)?;
    let changes = match settings.from.as_str() {
        "github" => {
            let name = settings.github_repo.as_deref().ok_or("--from github needs --github-repo OWNER/NAME")?;
            let token = std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty());
            crate::github::changes(&args.github_api, name, token.as_deref(), settings.limit)?
        }
        _ => mirror::changes_from_history(&checkout.root, settings.limit)?,
    };
    let lm = lm_client(lm_config, &args.lm, cache)?;
    let script = crate::script::combine::RepoScript::load_with(
        catalog.resolve("mirror", &settings.strategy)?,
        "mirror",
        "change",
        Some(lm.clone()),
    )
    .map_err(|e| e.to_string())?;
    let bar = console::Bar::new(args.json);
    let summary = mirror::mirror(
        &script,
        &changes,
        &Map::new(),
        settings.seed,
        &profile.repo_name,
        &checkout.root,
        &args.out,
        &bar,
    );
    bar.finish();
    let summary = summary?;
    write_ledger(&args.out, &lm)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
    } else {
        println!(
            "{} changes: {} undone by reverse-applying, {} rewritten by the model, {} without a candidate; ${:.4} spent",
            summary.changes, summary.reversed, summary.rewritten, summary.failed, summary.cost
        );
    }
    Ok(EXIT_OK)
}

fn combine_command(catalog: &Catalog, args: &CombineArgs, cache: Option<&Path>) -> Result<u8, String> {
    let recipe = match &args.recipe {
        Some(path) => Recipe::load(path).map_err(|e| e.to_string())?,
        None => Recipe::default(),
    };
    let profile = load_profile(&args.profile)?;
    let checkout = checkout_for(&profile, cache)?;
    let ids: Vec<String> = if !args.strategies.is_empty() {
        args.strategies.clone()
    } else if !recipe.combine.is_empty() {
        recipe.combine.iter().map(|c| c.id.clone()).collect()
    } else {
        vec!["combine_file".into()]
    };
    let mut summaries = Vec::new();
    for id in &ids {
        let script = CombineScript::load(catalog.resolve("combine", &recipe.script(id))?).map_err(|e| e.to_string())?;
        let params: Map = recipe
            .combine
            .iter()
            .find(|c| &c.id == id)
            .map(|c| c.params.iter().map(|(k, v)| (k.as_str().into(), json_to_dynamic(v))).collect())
            .unwrap_or_default();
        let seed = args.seed.or(recipe.seed).unwrap_or(DEFAULT_SEED);
        let summary = combine::combine(&script, params, seed, &profile.repo_name, &checkout.root, &args.out)?;
        if !args.json {
            println!(
                "{}: {} merged candidates from {} validated bugs -> {}",
                summary.strategy, summary.combos, summary.candidates, summary.output
            );
        }
        summaries.push(summary);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summaries).unwrap_or_default());
    }
    Ok(EXIT_OK)
}

/// Where a recipe's relative paths start.
fn recipe_base(path: &Path) -> PathBuf {
    path.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// A recipe's source: local directories are relative to the recipe.
fn recipe_source(base: &Path, source: &str) -> String {
    let local = base.join(source);
    if !source.contains(':') && !Path::new(source).is_absolute() && local.is_dir() {
        local.display().to_string()
    } else {
        source.to_string()
    }
}

fn recipe_profile_path(base: &Path, out: &Path, name: &str, recipe: &Recipe) -> PathBuf {
    recipe.profile.as_ref().map_or_else(|| out.join("profiles").join(format!("{name}.yaml")), |p| base.join(p))
}

fn recipe_check_command(catalog: &Catalog, path: &Path) -> Result<u8, String> {
    let recipe = match Recipe::load(path) {
        Ok(recipe) => recipe,
        Err(e) => {
            println!("{e}");
            return Ok(EXIT_FAILURE);
        }
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let base = recipe_base(path);
    let mut problems = Vec::new();
    for entry in &recipe.strategies {
        let line = crate::recipe::entry_line(&text, &entry.id);
        match catalog.resolve_strategy(&recipe.script(&entry.id)) {
            Ok(origin) => {
                if let Err(e) = Strategy::load(catalog.engine(), origin) {
                    problems.push(format!("line {line}: strategy `{}`: {e}", entry.id));
                }
            }
            Err(e) => problems.push(format!("line {line}: {e}")),
        }
    }
    for entry in &recipe.combine {
        let line = crate::recipe::entry_line(&text, &entry.id);
        match catalog.resolve("combine", &recipe.script(&entry.id)) {
            Ok(origin) => {
                if let Err(e) = CombineScript::load(origin) {
                    problems.push(format!("line {line}: combine `{}`: {e}", entry.id));
                }
            }
            Err(e) => problems.push(format!("line {line}: {e}")),
        }
    }
    if let Some(mirror) = &recipe.mirror {
        let id = mirror.strategy.clone().unwrap_or_else(|| "pr_mirror".into());
        if let Err(e) = catalog.resolve("mirror", &recipe.script(&id)) {
            problems.push(format!("line {}: {e}", crate::recipe::line_of(&text, "mirror:")));
        }
        if mirror.from.as_deref() == Some("github") && mirror.github_repo.is_none() {
            problems.push(format!(
                "line {}: mirror from github needs github_repo",
                crate::recipe::line_of(&text, "mirror:")
            ));
        }
    }
    let template = recipe.issues.template.clone().unwrap_or_else(|| "static".into());
    match catalog.resolve("issues", &recipe.script(&template)) {
        Ok(origin) => {
            if let Err(e) = IssueTemplate::load(origin, None) {
                problems.push(format!("issue template `{template}`: {e}"));
            }
        }
        Err(e) => problems.push(format!("line {}: {e}", crate::recipe::line_of(&text, "template"))),
    }
    match (&recipe.profile, &recipe.source) {
        (Some(profile), _) if base.join(profile).is_file() => {
            if let Err(e) = Profile::load(&base.join(profile)) {
                problems.push(e.to_string());
            }
        }
        (_, Some(source)) => {
            if let Err(e) = SourceSpec::parse(&recipe_source(&base, source)) {
                problems.push(format!("line {}: {e}", crate::recipe::line_of(&text, "source")));
            }
        }
        (Some(profile), None) => {
            problems.push(format!("profile {profile} does not exist and no source is given to create it"));
        }
        (None, None) => println!("{}: note: no source or profile, so only for `gen --recipe`", path.display()),
    }
    if problems.is_empty() {
        println!("{}: ok", path.display());
        Ok(EXIT_OK)
    } else {
        for p in &problems {
            println!("{}: {p}", path.display());
        }
        Ok(EXIT_FAILURE)
    }
}

/// A hash of every script and prompt file the catalog offers (editing one re-runs the stages).
fn scripts_fingerprint(catalog: &Catalog) -> String {
    let mut text = String::new();
    for kind in crate::script::catalog::KINDS {
        for origin in catalog.origins(kind) {
            let script = match &origin {
                Origin::File(path) => std::fs::read_to_string(path).unwrap_or_default(),
                Origin::Builtin(_, text) => (*text).to_string(),
            };
            text.push_str(&script);
            for (key, prompt) in crate::script::template::prompts_for(&origin) {
                text.push_str(&format!("{key}\n{prompt}"));
            }
        }
    }
    crate::patch::hash8(&text)
}

/// Stages already finished, with the key of their inputs.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct RunState {
    done: std::collections::BTreeMap<String, String>,
}

fn run_command(catalog: &Catalog, args: &RunArgs, jobs: Option<usize>, cache: Option<&Path>) -> Result<u8, String> {
    let path = args.recipe.as_path();
    for stage in &args.redo {
        if !crate::recipe::STAGES.contains(&stage.as_str()) {
            return Err(format!("--redo {stage}: unknown stage (stages: {})", crate::recipe::STAGES.join(", ")));
        }
    }
    let sandbox = &args.sandbox;
    let recipe = Recipe::load(path).map_err(|e| e.to_string())?;
    let recipe_text = std::fs::read_to_string(path).unwrap_or_default();
    let base = recipe_base(path);
    let out = PathBuf::from(recipe.out.as_deref().unwrap_or(crate::settings::defaults::OUT));
    crate::log::to_file(&out);
    let name = recipe
        .name
        .clone()
        .unwrap_or_else(|| path.file_stem().map_or("run".into(), |s| s.to_string_lossy().to_string()));
    let profile_path = recipe_profile_path(&base, &out, &name, &recipe);
    if !profile_path.exists() {
        let source = recipe.source.as_ref().ok_or("the recipe names neither an existing profile nor a source")?;
        if let Some(dir) = profile_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let org = recipe.org.as_deref().unwrap_or(crate::profile::DEFAULT_ORG);
        profile_init_command(&recipe_source(&base, source), &profile_path, org, cache)?;
    }
    let profile_text =
        std::fs::read_to_string(&profile_path).map_err(|e| format!("{}: {e}", profile_path.display()))?;
    let backend = args.backend.unwrap_or(if recipe.backend.as_deref() == Some("docker") {
        BackendKind::Docker
    } else {
        BackendKind::Local
    });
    let seed = args.seed.or(recipe.seed).unwrap_or(DEFAULT_SEED);
    // What the stages read besides the recipe and profile: a change to any re-runs them.
    let inputs = format!(
        "{}\n{}\n{seed}\n{backend:?}\n{:?}\n{}",
        env!("CARGO_PKG_VERSION"),
        scripts_fingerprint(catalog),
        args.lm,
        sandbox.no_sandbox
    );
    let run_sandbox = SandboxArgs { no_sandbox: !containment(sandbox, recipe.sandbox).sandbox, ..sandbox.clone() };
    // By default every stage, `combine` only when the recipe configures it.
    let stages: Vec<String> = recipe.stages.clone().unwrap_or_else(|| {
        crate::recipe::STAGES
            .iter()
            .filter(|s| {
                (**s != "combine" || !recipe.combine.is_empty()) && (**s != "mirror" || recipe.mirror.is_some())
            })
            .map(|s| (*s).to_string())
            .collect()
    });
    let state_path = out.join("runs").join(format!("{name}.json"));
    let mut state: RunState =
        std::fs::read_to_string(&state_path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    let run_args = args;
    for stage in crate::recipe::STAGES.iter().filter(|s| stages.iter().any(|x| x == *s)) {
        let key = crate::patch::hash8(&format!("{stage}\n{recipe_text}\n{profile_text}\n{inputs}"));
        let redo = args.force || args.redo.iter().any(|r| r == stage);
        if state.done.get(*stage) == Some(&key) && !redo {
            println!("== {stage}: finished earlier, skipped");
            continue;
        }
        println!("== {stage}");
        tracing::info!(target: crate::log::RECORD, "stage {stage} of {}", path.display());
        let code = match *stage {
            "env" => env_build_command(&profile_path, backend, &out, cache)?,
            "gen" => {
                let args = GenArgs {
                    source: profile_path.display().to_string(),
                    recipe: Some(path.to_path_buf()),
                    strategies: Vec::new(),
                    seed: run_args.seed,
                    max_bugs: None,
                    files: Vec::new(),
                    clean: false,
                    out: out.clone(),
                    json: false,
                    lm: run_args.lm.clone(),
                };
                gen_command(catalog, &args, cache)?
            }
            "validate" => {
                let args = ValidateArgs {
                    profile: profile_path.clone(),
                    candidates: None,
                    out: out.clone(),
                    backend,
                    timeout: recipe.validate.timeout,
                    recycle_after: recipe.validate.recycle_after.unwrap_or(200),
                    json: false,
                    sandbox: run_sandbox.clone(),
                };
                validate_command(&args, jobs.or(recipe.validate.jobs), cache)?
            }
            "mirror" => {
                let args = MirrorArgs {
                    profile: profile_path.clone(),
                    recipe: Some(path.to_path_buf()),
                    from: None,
                    github_repo: None,
                    github_api: crate::settings::defaults::GITHUB_API.into(),
                    limit: None,
                    strategy: None,
                    seed: run_args.seed,
                    out: out.clone(),
                    lm: run_args.lm.clone(),
                    json: false,
                };
                mirror_command(catalog, &args, cache)?
            }
            "combine" => {
                let args = CombineArgs {
                    profile: profile_path.clone(),
                    strategies: Vec::new(),
                    recipe: Some(path.to_path_buf()),
                    seed: Some(seed),
                    out: out.clone(),
                    json: false,
                };
                combine_command(catalog, &args, cache)?;
                // The combinations are candidates like any other: validate and gather them.
                let validate_args = ValidateArgs {
                    profile: profile_path.clone(),
                    candidates: None,
                    out: out.clone(),
                    backend,
                    timeout: recipe.validate.timeout,
                    recycle_after: recipe.validate.recycle_after.unwrap_or(200),
                    json: false,
                    sandbox: run_sandbox.clone(),
                };
                validate_command(&validate_args, jobs.or(recipe.validate.jobs), cache)?;
                let gather_args = GatherArgs {
                    profile: profile_path.clone(),
                    out: out.clone(),
                    push: recipe.gather.push.clone(),
                    json: false,
                };
                gather_command(&gather_args, cache)?
            }
            "gather" => {
                let args = GatherArgs {
                    profile: profile_path.clone(),
                    out: out.clone(),
                    push: recipe.gather.push.clone(),
                    json: false,
                };
                gather_command(&args, cache)?
            }
            _ => {
                let args = IssueGenArgs {
                    profile: profile_path.clone(),
                    recipe: Some(path.to_path_buf()),
                    template: None,
                    out: out.clone(),
                    seed: run_args.seed,
                    redo: false,
                    lm: run_args.lm.clone(),
                    json: false,
                };
                issue_gen_command(catalog, &args, cache)?
            }
        };
        if code != EXIT_OK {
            return Ok(code);
        }
        state.done.insert((*stage).to_string(), key);
        if let Some(dir) = state_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let json = serde_json::to_string_pretty(&state).map_err(|e| e.to_string())?;
        bug_gen::write_atomic(&state_path, json.as_bytes()).map_err(|e| format!("{}: {e}", state_path.display()))?;
    }
    Ok(EXIT_OK)
}

/// Profiles, checkouts and environments of the repositories some instances belong to; the
/// instances of a repository without a usable profile are returned with the reason.
fn prepare_repositories(
    backend: &dyn Backend,
    instances: &[gather::TaskInstance],
    profiles: BTreeMap<String, Profile>,
    out: &Path,
    cache: Option<&Path>,
    quiet: bool,
) -> (BTreeMap<String, crate::eval::Repository>, Vec<String>) {
    let mut profiles = profiles;
    let mut repositories = BTreeMap::new();
    let mut problems = Vec::new();
    let names: std::collections::BTreeSet<&str> = instances.iter().map(crate::eval::repo_name_of).collect();
    for name in names {
        let Some(profile) = profiles.remove(name) else {
            problems.push(format!(
                "{name}: no profile (give one with --profile, or put it under {}/profiles/)",
                out.display()
            ));
            continue;
        };
        let prepared = checkout_for(&profile, cache).and_then(|checkout| {
            console::status(quiet, &format!("preparing the {} environment of {name} …", backend.name()));
            let log_dir = out.join("build_images").join("env").join(name);
            let env_id = backend.build_env(&profile, &checkout, &log_dir).map_err(|e| e.to_string())?;
            Ok(crate::eval::Repository { profile, checkout, env_id })
        });
        match prepared {
            Ok(repository) => {
                repositories.insert(name.to_string(), repository);
            }
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    (repositories, problems)
}

fn eval_command(args: &EvalArgs, jobs: Option<usize>, cache: Option<&Path>) -> Result<u8, String> {
    let started = Instant::now();
    let mut instances = gather::read_instances(&args.instances)?;
    if !args.instance_ids.is_empty() {
        instances.retain(|i| args.instance_ids.contains(&i.instance_id));
    }
    let predictions = if args.predictions == "gold" {
        crate::eval::gold(&instances)
    } else {
        crate::eval::read_predictions(Path::new(&args.predictions))?
    };
    let (profiles, mut problems) = crate::eval::find_profiles(&args.profiles, &args.out, &args.instances);
    let backend = make_backend(args.backend, cache, containment(&args.sandbox, None))?;
    let (repositories, setup_problems) =
        prepare_repositories(backend.as_ref(), &instances, profiles, &args.out, cache, args.json);
    problems.extend(setup_problems);
    let by_id: BTreeMap<&str, &Prediction> = predictions.iter().map(|p| (p.instance_id.as_str(), p)).collect();
    let settings = crate::eval::Settings {
        run_dir: args.out.join("run_evaluation").join(&args.run_id),
        out: args.out.clone(),
        jobs: jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from)),
        redo: args.redo,
    };
    let mut reports = BTreeMap::new();
    let mut reused = 0;
    let bar = console::Bar::new(args.json);
    for (name, repository) in &repositories {
        let work: Vec<(&gather::TaskInstance, &Prediction)> = instances
            .iter()
            .filter(|i| crate::eval::repo_name_of(i) == name)
            .filter_map(|i| by_id.get(i.instance_id.as_str()).map(|p| (i, *p)))
            .filter(|(_, p)| p.model_patch.as_deref().is_some_and(|t| !t.trim().is_empty()))
            .collect();
        match crate::eval::evaluate_repository(backend.as_ref(), repository, &work, &settings, &bar) {
            Ok((done, skipped)) => {
                reports.extend(done);
                reused += skipped;
            }
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    bar.finish();
    let mut summary = crate::eval::summarize(&instances, &predictions, &reports);
    summary.reused = reused;
    summary.seconds = started.elapsed().as_secs_f64();
    summary.per_minute = (summary.completed_instances + summary.error_instances).saturating_sub(reused) as f64 * 60.0
        / summary.seconds.max(1e-9);
    std::fs::create_dir_all(&settings.run_dir).map_err(|e| format!("{}: {e}", settings.run_dir.display()))?;
    let path = settings.run_dir.join("report.json");
    let json = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    bug_gen::write_atomic(&path, json.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    if args.json {
        println!("{json}");
    } else {
        println!(
            "{} instances, {} submitted: {} resolved, {} unresolved, {} empty patches, {} errors ({} reused) in {:.1} s -> {}",
            summary.total_instances,
            summary.submitted_instances,
            summary.resolved_instances,
            summary.unresolved_instances,
            summary.empty_patch_instances,
            summary.error_instances,
            summary.reused,
            summary.seconds,
            path.display()
        );
    }
    for problem in &problems {
        eprintln!("  {problem}");
    }
    Ok(EXIT_OK)
}

fn serve_command(args: &ServeArgs, jobs: Option<usize>, cache: Option<&Path>) -> Result<u8, String> {
    let instances = gather::read_instances(&args.instances)?;
    let (profiles, problems) = crate::eval::find_profiles(&args.profiles, &args.out, &args.instances);
    for problem in &problems {
        eprintln!("  {problem}");
    }
    let token = match &args.token_env {
        Some(var) => {
            Some(std::env::var(var).ok().filter(|t| !t.is_empty()).ok_or(format!("${var} is empty or not set"))?)
        }
        None => None,
    };
    let backend = make_backend(args.backend, cache, containment(&args.sandbox, None))?;
    let (repositories, problems) =
        prepare_repositories(backend.as_ref(), &instances, profiles, &args.out, cache, false);
    for problem in &problems {
        eprintln!("  {problem}");
    }
    let settings = crate::serve::Settings {
        bind: args.bind.clone(),
        token,
        workers: jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from)),
        out: args.out.clone(),
    };
    crate::serve::serve(backend.as_ref(), &instances, &repositories, &settings)?;
    Ok(EXIT_OK)
}

fn export_command(action: &ExportAction) -> Result<u8, String> {
    match action {
        ExportAction::SwesmithProfile { profile, output } => {
            let profile = load_profile(profile)?;
            crate::export::write_swesmith_profile(&profile, output)?;
            println!(
                "wrote {} (register it with SWE-smith: `import` the file before running its harness)",
                output.display()
            );
        }
        ExportAction::Swebench { instances, output, profiles, out, no_images } => {
            let list = gather::read_instances(instances)?;
            let (profiles, problems) = crate::eval::find_profiles(profiles, out, instances);
            for problem in &problems {
                eprintln!("  {problem}");
            }
            let summary = crate::export::swebench(&list, &profiles, out, output)?;
            println!("{} instances -> {} (spec: {})", summary.instances, output.display(), summary.spec);
            if !no_images {
                let backend = DockerBackend::connect(Default::default()).map_err(|e| e.to_string())?;
                let built = crate::export::swebench_images(&backend, &list, &profiles)?;
                println!("{built} per-instance images tagged sweb.eval.{}.<instance_id>", crate::profile::arch());
            }
        }
        ExportAction::Functions { instances, output, out } => {
            let list = gather::read_instances(instances)?;
            let summary = crate::export::functions(&list, out, output)?;
            println!("{} function tasks from {} instances -> {}", summary.tasks, summary.instances, output.display());
        }
    }
    Ok(EXIT_OK)
}
