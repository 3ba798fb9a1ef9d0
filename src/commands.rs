//! The subcommands: glue between the command line, the settings sources (flags > recipe >
//! script defaults) and the library modules.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rhai::{Dynamic, Map};

use crate::ast::SourceFile;
use crate::bug_gen::{self, Outcome, Plan, Problem, Report};
use crate::cli::{Args, Command, GenArgs, StrategiesAction, TryArgs};
use crate::recipe::Recipe;
use crate::script::{Origin, Strategy, catalog::Catalog};
use crate::source::{self, SourceSpec};
use crate::{EXIT_FAILURE, EXIT_OK, console};

/// The seed SWE-smith uses by default.
const DEFAULT_SEED: u64 = 24;

pub(crate) fn dispatch(args: Args) -> Result<u8, String> {
    let catalog = Catalog::locate(args.global.strategies_dir.as_deref());
    match args.command {
        Command::Gen(gen_args) => gen_command(&catalog, &gen_args, args.global.cache_dir.as_deref()),
        Command::Try(try_args) => try_command(&catalog, &try_args),
        Command::Strategies { action: StrategiesAction::List { kind } } => list_command(&catalog, &kind),
        Command::Strategies { action: StrategiesAction::Check } => check_command(&catalog),
    }
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
fn plans(catalog: &Catalog, args: &GenArgs, recipe: &Recipe) -> Result<(Vec<Plan>, Vec<Problem>), String> {
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
        let origin = catalog.resolve("procedural", id)?;
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
        plans.push(Plan { strategy: Arc::new(strategy), overrides, max_bugs });
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
    let (plans, load_problems) = plans(catalog, args, &recipe)?;
    let spec = SourceSpec::parse(&args.source).map_err(|e| e.to_string())?;
    console::status(args.json, &format!("fetching {} …", args.source));
    let checkout = source::fetch(&spec, &source::cache_dir(cache)).map_err(|e| e.to_string())?;
    let paths: Vec<String> = crate::git::tracked_files(&checkout.root)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|p| bug_gen::is_candidate_source(p))
        .collect();
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
    report.seconds = started.elapsed().as_secs_f64();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        console::print_gen_summary(&report);
    }
    Ok(EXIT_OK)
}

fn resolve_one(catalog: &Catalog, spec: &str) -> Result<Arc<Strategy>, String> {
    let origin = catalog.resolve("procedural", spec)?;
    Strategy::load(catalog.engine(), origin).map(Arc::new).map_err(|e| e.to_string())
}

fn try_command(catalog: &Catalog, args: &TryArgs) -> Result<u8, String> {
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
        || -> (Option<SystemTime>, Option<SystemTime>) { (stamp(&args.file), script_path.as_deref().and_then(stamp)) };
    let mut last = watched();
    loop {
        if let Some(error) = strategy.refresh() {
            eprintln!("error: {error}");
        } else if let Err(message) = try_once(&strategy, args) {
            eprintln!("error: {message}");
        }
        eprintln!("--- watching {} and {} (Ctrl-C to stop) ---", args.file.display(), strategy.display_path());
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let now = watched();
            if now != last {
                last = now;
                break;
            }
        }
    }
}

fn try_once(strategy: &Arc<Strategy>, args: &TryArgs) -> Result<u8, String> {
    // Diff paths are relative (to the current directory when the file is under it).
    let cwd = std::env::current_dir().unwrap_or_default();
    let relative = args
        .file
        .strip_prefix(&cwd)
        .ok()
        .or_else(|| args.file.file_name().map(Path::new).filter(|_| args.file.is_absolute()));
    let display = relative.unwrap_or(&args.file).to_string_lossy().replace('\\', "/");
    let bytes = std::fs::read(&args.file).map_err(|e| format!("{display}: {e}"))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| format!("{display}: not UTF-8 (invalid byte at offset {})", e.utf8_error().valid_up_to()))?;
    let file = SourceFile::parse(&display, text).map_err(|e| format!("{display}:{e}"))?;
    let plan = Plan { strategy: strategy.clone(), overrides: Map::new(), max_bugs: None };
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

fn list_command(catalog: &Catalog, kind: &str) -> Result<u8, String> {
    let (strategies, errors) = catalog.load(catalog.origins(kind));
    println!("{:<28} {:>10} {:>9} {:>9}  conditions", "strategy", "likelihood", "min cplx", "max cplx");
    for s in &strategies {
        let m = s.meta();
        println!(
            "{:<28} {:>10} {:>9} {:>9}  {}",
            s.id,
            m.likelihood,
            m.min_complexity,
            m.max_complexity.map_or("-".to_string(), |c| c.to_string()),
            m.conditions.join(", ")
        );
    }
    println!(
        "({} from {})",
        strategies.len(),
        catalog.root.as_ref().map_or("the built-in copies".to_string(), |r| r.join(kind).display().to_string())
    );
    for e in &errors {
        eprintln!("error: {e}");
    }
    Ok(if errors.is_empty() { EXIT_OK } else { EXIT_FAILURE })
}

fn check_command(catalog: &Catalog) -> Result<u8, String> {
    let (strategies, errors) = catalog.load(catalog.origins("procedural"));
    for s in &strategies {
        println!("ok     {}", s.display_path());
    }
    for e in &errors {
        println!("error  {e}");
    }
    println!("{} scripts load, {} fail", strategies.len(), errors.len());
    Ok(if errors.is_empty() { EXIT_OK } else { EXIT_FAILURE })
}
