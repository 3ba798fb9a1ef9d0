//! The command line's dispatch: each subcommand's flags become that stage's typed flags, its
//! settings are resolved once (`settings`), and the stage's own command handler runs. Nothing
//! past this module sees a clap type.

use std::path::Path;

use crate::cli::{
    Args, BackendKind as CliBackend, CandidatesAction, ChangeSource, Command, DockerAction, EnvAction, ExportAction,
    LmArgs, ProfileAction, RecipeAction, SandboxArgs, SelectArg, StrategiesAction,
};
use crate::context::{Context, Error, Outcome};
use crate::profile::LimitSettings;
use crate::script::catalog::Catalog;
use crate::settings::{
    BackendKind, CampaignFlags, CombineFlags, CombineSettings, EmitKind, GatherSettings, GenFlags, GenSettings,
    IssueFlags, IssueSettings, LmFlags, MirrorFlags, MirrorSettings, RunFlags, RunnerFlags, RunnerSettings,
    SandboxFlags, Selector, ValidateFlags, ValidateSettings,
};

pub(crate) fn dispatch(args: Args) -> Outcome {
    let ctx = Context {
        catalog: Catalog::locate(args.global.strategies_dir.as_deref(), args.global.no_builtin),
        cache: args.global.cache_dir.clone(),
        docker_hosts: args.global.docker_host.clone(),
    };
    if let Some(out) = output_dir(&args.command) {
        crate::log::to_file(out);
    }
    let jobs = args.global.jobs;
    match args.command {
        Command::Gen(a) => {
            let recipe = ctx.recipe(a.recipe.as_deref())?;
            if recipe.budget.is_some() {
                return Err(Error::Usage(
                    "the recipe's `budget:` is spent in rounds of gen and validate: run it with `bugsmith run`".into(),
                ));
            }
            let flags = GenFlags {
                strategies: a.strategies,
                seed: a.seed,
                max_bugs: a.max_bugs,
                files: a.files,
                clean: a.clean,
                covered_only: a.covered_only,
                lm: lm_flags(&a.lm),
            };
            crate::bug_gen::command(&ctx, &a.source, &GenSettings::resolve(&flags, &recipe), &a.out, a.json)
        }
        Command::Validate(a) => {
            let flags = ValidateFlags {
                backend: a.backend.map(backend),
                jobs,
                timeout: a.timeout,
                recycle_after: a.recycle_after,
                candidates: a.candidates,
                sandbox: sandbox_flags(&a.sandbox),
                select: a.select.map(|s| match s {
                    SelectArg::Covering => Selector::Covering,
                    SelectArg::All => Selector::All,
                }),
                exact: a.exact,
                verify: a.verify,
                seed: a.seed,
            };
            let settings = ValidateSettings::resolve(&flags, &crate::recipe::Recipe::default());
            crate::validate::command(&ctx, &a.profile, &settings, &a.out, a.json)
        }
        Command::Gather(a) => {
            let settings = GatherSettings::resolve(a.push, &crate::recipe::Recipe::default());
            crate::gather::command(&ctx, &a.profile, &settings, &a.out, a.json)
        }
        Command::IssueGen(a) => {
            let recipe = ctx.recipe(a.recipe.as_deref())?;
            let flags = IssueFlags { template: a.template, seed: a.seed, redo: a.redo, lm: lm_flags(&a.lm) };
            crate::issue_gen::command(&ctx, &a.profile, &IssueSettings::resolve(&flags, &recipe), &a.out, a.json)
        }
        Command::Combine(a) => {
            let recipe = ctx.recipe(a.recipe.as_deref())?;
            let flags = CombineFlags { strategies: a.strategies, seed: a.seed };
            crate::combine::command(&ctx, &a.profile, &CombineSettings::resolve(&flags, &recipe), &a.out, a.json)
        }
        Command::Mirror(a) => {
            let recipe = ctx.recipe(a.recipe.as_deref())?;
            let flags = MirrorFlags {
                from: a.from.map(|f| if f == ChangeSource::Github { "github" } else { "history" }.to_string()),
                github_repo: a.github_repo,
                github_api: a.github_api,
                limit: a.limit,
                strategy: a.strategy,
                seed: a.seed,
                lm: lm_flags(&a.lm),
            };
            crate::mirror::command(&ctx, &a.profile, &MirrorSettings::resolve(&flags, &recipe), &a.out, a.json)
        }
        Command::Run(a) => {
            let flags = RunFlags {
                force: a.force,
                redo: a.redo,
                seed: a.seed,
                backend: a.backend.map(backend),
                jobs,
                sandbox: sandbox_flags(&a.sandbox),
                lm: lm_flags(&a.lm),
            };
            crate::run::command(&ctx, &a.recipe, &flags)
        }
        Command::Campaign(a) => {
            let emit = match a.emit.as_slice() {
                [] => None,
                [kind, dir] => Some((
                    match kind.as_str() {
                        "slurm" => EmitKind::Slurm,
                        "k8s" | "kubernetes" => EmitKind::K8s,
                        other => return usage_exits_2(Err(format!("--emit {other}: expected slurm or k8s").into())),
                    },
                    dir.into(),
                )),
                _ => return usage_exits_2(Err("--emit takes a kind and a folder: --emit slurm DIR".into())),
            };
            let flags = CampaignFlags {
                out: a.out,
                shard: a.shard,
                time_budget: a.time_budget,
                check: a.check,
                emit,
                run: RunFlags {
                    force: a.force,
                    redo: Vec::new(),
                    seed: a.seed,
                    backend: a.backend.map(backend),
                    jobs,
                    sandbox: sandbox_flags(&a.sandbox),
                    lm: lm_flags(&a.lm),
                },
            };
            usage_exits_2(crate::campaign::command(&ctx, &a.file, &flags))
        }
        Command::Merge(a) => usage_exits_2(crate::campaign::merge::command(&a.outputs, &a.out)),
        Command::Stats { outputs, json } => crate::stats::command(&outputs, json),
        Command::Eval(a) => {
            let runner = runner(a.backend, jobs, &a.sandbox);
            let request = crate::eval::EvalRequest {
                instances: a.instances,
                predictions: a.predictions,
                profiles: a.profiles,
                run_id: a.run_id,
                instance_ids: a.instance_ids,
                redo: a.redo,
            };
            crate::eval::command(&ctx, &request, &runner, &a.out, a.json)
        }
        Command::Serve(a) => {
            let runner = runner(a.backend, jobs, &a.sandbox);
            crate::eval::serve::command(
                &ctx,
                &a.instances,
                &a.profiles,
                &a.bind,
                a.token_env.as_deref(),
                &runner,
                &a.out,
            )
        }
        Command::Try(a) if a.instance.is_some() => {
            let request = crate::issue_gen::PreviewRequest {
                template: a.strategy,
                instance: a.instance.unwrap_or_default(),
                out: a.out,
                profile: a.profile,
                seed: a.seed,
                watch: a.watch,
            };
            crate::issue_gen::try_command(&ctx, &request)
        }
        Command::Try(a) => {
            let request = crate::bug_gen::TryRequest {
                strategy: a.strategy,
                file: a.file,
                instance: a.instance,
                out: a.out,
                profile: a.profile,
                entity: a.entity,
                seed: a.seed,
                all_entities: a.all_entities,
                watch: a.watch,
            };
            crate::bug_gen::try_command(&ctx, &request)
        }
        Command::Strategies { action: StrategiesAction::List { kind, json } } => {
            crate::author::list_command(&ctx.catalog, &kind, json)
        }
        Command::Strategies { action: StrategiesAction::Export { dir } } => crate::author::export_command(&dir),
        Command::Strategies { action: StrategiesAction::Check } => crate::author::check_command(&ctx.catalog),
        Command::Recipe { action: RecipeAction::Check { recipe } } => {
            crate::author::recipe_check_command(&ctx.catalog, &recipe)
        }
        Command::Profile { action: ProfileAction::Init { source, output, org } } => {
            crate::setup::profile_init_command(&ctx, &source, &output, &org)
        }
        Command::Env { action: EnvAction::Build { profile, backend: kind, out } } => {
            crate::setup::env_build_command(&ctx, &profile, backend(kind), &out)
        }
        Command::Candidates { action: CandidatesAction::List { strategy, file, entity, verdict, out, json } } => {
            let file = file
                .map(|g| globset::Glob::new(&g).map(|g| g.compile_matcher()).map_err(|e| format!("--file {g}: {e}")))
                .transpose()?;
            crate::candidates::list_command(&out, &crate::candidates::Filter { strategy, file, entity, verdict }, json)
        }
        Command::Candidates { action: CandidatesAction::Show { candidate, out } } => {
            crate::candidates::show_command(&out, &candidate)
        }
        Command::Docker { action: DockerAction::Prune { all, older_than } } => docker_prune(&ctx, all, older_than),
        Command::Export { action: ExportAction::SwesmithProfile { profile, output } } => {
            crate::export::swesmith_profile_command(&ctx, &profile, &output)
        }
        Command::Export { action: ExportAction::Swebench { instances, output, profiles, out, no_images } } => {
            crate::export::swebench_command(&instances, &output, &profiles, &out, !no_images)
        }
        Command::Export { action: ExportAction::Functions { instances, output, out } } => {
            crate::export::functions_command(&instances, &output, &out)
        }
        Command::Completions { shell } => {
            crate::cli::completions(shell, &mut std::io::stdout());
            Ok(crate::EXIT_OK)
        }
        Command::Man => {
            crate::cli::man_page(&mut std::io::stdout()).map_err(|e| Error::Usage(e.to_string()))?;
            Ok(crate::EXIT_OK)
        }
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

fn backend(kind: CliBackend) -> BackendKind {
    match kind {
        CliBackend::Local => BackendKind::Local,
        CliBackend::Docker => BackendKind::Docker,
    }
}

fn lm_flags(args: &LmArgs) -> LmFlags {
    LmFlags {
        model: args.model.clone(),
        base_url: args.base_url.clone(),
        key_env: args.key_env.clone(),
        budget: args.budget,
        concurrency: args.concurrency.map(usize::from),
        replay: args.replay,
    }
}

fn sandbox_flags(args: &SandboxArgs) -> SandboxFlags {
    SandboxFlags {
        no_sandbox: args.no_sandbox,
        limits: LimitSettings { memory: args.memory, pids: args.pids, file_size: args.file_size, tmp: args.tmp },
    }
}

fn runner(kind: Option<CliBackend>, jobs: Option<usize>, sandbox: &SandboxArgs) -> RunnerSettings {
    RunnerSettings::resolve(&RunnerFlags { backend: kind.map(backend), jobs, sandbox: sandbox_flags(sandbox) })
}

fn docker_prune(ctx: &Context, all: bool, older_than: Option<std::time::Duration>) -> Outcome {
    let daemons = ctx.docker_daemons()?;
    for docker in &daemons {
        let summary = docker.prune_command(all, older_than);
        let on = if daemons.len() > 1 { format!(" on {}", docker.host()) } else { String::new() };
        for (name, why) in &summary.removed {
            println!("removed {name}{on}: {why}");
        }
        for (name, why) in &summary.kept {
            println!("kept {name}{on}: {why}");
        }
        println!("{} removed, {} kept{on}", summary.removed.len(), summary.kept.len());
    }
    Ok(crate::EXIT_OK)
}

/// `campaign` and `merge` exit 2 on a usage error (a bad flag or file, outputs that are not
/// campaigns), as their callers (array jobs, scripts) are told; other commands keep 1.
fn usage_exits_2(outcome: Outcome) -> Outcome {
    match outcome {
        Err(Error::Usage(message)) => {
            tracing::error!(target: crate::log::RECORD, "{message}");
            eprintln!("error: {message}");
            Ok(crate::EXIT_USAGE)
        }
        other => other,
    }
}
