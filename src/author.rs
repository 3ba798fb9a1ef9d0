//! The author's loop: `try` a strategy on a file or a template on an instance (with
//! `--watch`), `strategies list|check|export`, and `recipe check`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::ast::SourceFile;
use crate::bug_gen::{self, Outcome as MutateOutcome, Plan};
use crate::console;
use crate::context::{Context, Error, Outcome};
use crate::profile::Profile;
use crate::recipe::Recipe;
use crate::script::catalog::Catalog;
use crate::script::repo::CombineScript;
use crate::script::template::IssueTemplate;
use crate::script::{Origin, Strategy};
use crate::settings::Params;
use crate::source::SourceSpec;

/// What `try` is asked for.
#[derive(Clone, Debug)]
pub struct TryRequest {
    /// Strategy (or, with `instance`, issue template) id or path.
    pub strategy: String,
    /// The Python file to mutate.
    pub file: Option<PathBuf>,
    /// An instance id: render the template for it instead.
    pub instance: Option<String>,
    /// Output directory the instance came from.
    pub out: PathBuf,
    /// Profile of the instance's repository.
    pub profile: Option<PathBuf>,
    /// Only this entity.
    pub entity: Option<String>,
    /// Seed.
    pub seed: u64,
    /// Also entities outside the strategy's conditions.
    pub all_entities: bool,
    /// Run again whenever a file changes.
    pub watch: bool,
}

/// `bugsmith strategies export DIR`: the built-in scripts, for editing.
pub fn export_command(dir: &Path) -> Outcome {
    let (written, kept) = crate::script::catalog::export_builtin(dir).map_err(crate::context::io(dir))?;
    println!("wrote {written} built-in files under {} ({kept} already there, left alone)", dir.display());
    Ok(crate::EXIT_OK)
}

fn resolve_one(catalog: &Catalog, spec: &str) -> Result<Arc<Strategy>, Error> {
    let origin = catalog.resolve("procedural", spec)?;
    Ok(Arc::new(Strategy::load(catalog.engine(), origin)?))
}

/// `bugsmith try`: a strategy on one file (diffs to stdout), or a template on one instance;
/// with `--watch`, again whenever a file changes.
pub fn try_command(ctx: &Context, args: &TryRequest) -> Outcome {
    let catalog = &ctx.catalog;
    if let Some(instance) = &args.instance {
        return try_template(ctx, args, instance);
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
fn try_template(ctx: &Context, args: &TryRequest, instance: &str) -> Outcome {
    let catalog = &ctx.catalog;
    let explicit: Vec<PathBuf> = args.profile.iter().cloned().collect();
    let (profiles, _) = crate::eval::find_profiles(&explicit, &args.out, &args.out.join("task_insts").join("x.json"));
    let profile = profiles
        .into_values()
        .filter(|p| crate::ids::InstanceId::parse(&p.repo_name, instance).is_some())
        .max_by_key(|p| p.repo_name.len())
        .ok_or_else(|| format!("no profile under {} for {instance}", args.out.join("profiles").display()))?;
    let checkout = ctx.checkout(&profile)?;
    let origin = catalog.resolve("issues", &args.strategy)?;
    let path = match &origin {
        Origin::File(path) => Some(path.clone()),
        Origin::Builtin(..) => None,
    };
    let stamp = || path.as_deref().and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    loop {
        let rendered = IssueTemplate::load(catalog.engine(), origin.clone(), "")
            .map_err(Error::from)
            .and_then(|template| {
                crate::issue_gen::preview(&profile.repo_name, &checkout.root, &args.out, &template, args.seed, instance)
                    .map_err(Error::from)
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
            return Ok(crate::EXIT_OK);
        }
        eprintln!("--- watching {} (Ctrl-C to stop) ---", crate::script::Strategy::origin_path(&origin));
        let last = stamp();
        while stamp() == last {
            std::thread::sleep(Duration::from_millis(250));
        }
        console::clear_screen();
    }
}

fn try_once(strategy: &Arc<Strategy>, args: &TryRequest) -> Outcome {
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
    let plan = Plan { strategy: strategy.clone(), overrides: Params::default(), max_bugs: None, threads: None };
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
        let applies = plan.strategy.applies_to(&file, index, &params)?;
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
            MutateOutcome::Candidate(c) => print!("{}", c.diff),
            MutateOutcome::Nothing { unparsable: 0 } => println!("# no change"),
            MutateOutcome::Nothing { unparsable } => println!("# no change ({unparsable} attempts did not parse)"),
            MutateOutcome::Error(p) => println!("# error: {p}"),
        }
    }
    if let Some(name) = &args.entity
        && shown == 0
    {
        return Err(Error::Usage(format!("{display}: no entity named `{name}`")));
    }
    if skipped > 0 {
        println!("# {skipped} entities skipped by the strategy's conditions (use --all-entities to run on them)");
    }
    Ok(crate::EXIT_OK)
}

/// `bugsmith strategies list`: the scripts of one kind, with where each comes from.
pub fn list_command(catalog: &Catalog, kind: &str, json: bool) -> Outcome {
    use crate::script::catalog::{KINDS, origin_source};
    if !KINDS.contains(&kind) {
        return Err(Error::Usage(format!("unknown kind `{kind}` (kinds: {})", KINDS.join(", "))));
    }
    let origins = catalog.origins(kind);
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let script_kind = crate::script::Kind::from_folder(kind).unwrap_or(crate::script::Kind::Procedural);
    for origin in origins {
        if matches!(script_kind, crate::script::Kind::Procedural | crate::script::Kind::Lm) {
            match Strategy::load(catalog.engine(), origin) {
                Ok(s) => {
                    let m = s.meta();
                    rows.push(serde_json::json!({
                        "id": s.id, "likelihood": m.likelihood, "min_complexity": m.min_complexity,
                        "max_complexity": m.max_complexity, "conditions": m.conditions,
                        "explanation": m.explanation, "source": origin_source(&s.origin),
                    }));
                }
                Err(e) => errors.push(e),
            }
            continue;
        }
        match crate::script::Script::open(catalog.engine(), script_kind, origin) {
            Ok(s) => rows.push(serde_json::json!({
                "id": s.id, "description": s.description(), "source": origin_source(&s.origin),
                "constants": s.constant_names(),
            })),
            Err(e) => errors.push(e),
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
    Ok(if errors.is_empty() { crate::EXIT_OK } else { crate::EXIT_FAILURE })
}

/// `bugsmith strategies check`: every script of every kind loads.
pub fn check_command(catalog: &Catalog) -> Outcome {
    let mut origins = catalog.origins("procedural");
    origins.extend(catalog.origins("lm"));
    let (strategies, mut errors) = catalog.load(origins);
    for s in &strategies {
        println!("ok     {}", s.display_path());
    }
    let mut loaded = strategies.len();
    // The other kinds, each checked for its own hook.
    for kind in [crate::script::Kind::Combine, crate::script::Kind::Mirror, crate::script::Kind::Issues] {
        for origin in catalog.origins(kind.folder()) {
            match crate::script::Script::open(catalog.engine(), kind, origin) {
                Ok(script) => {
                    println!("ok     {}", script.display_path());
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
    Ok(if errors.is_empty() { crate::EXIT_OK } else { crate::EXIT_FAILURE })
}

/// `bugsmith recipe check`: the recipe parses and every script, profile and source it names loads.
pub fn recipe_check_command(catalog: &Catalog, path: &Path) -> Outcome {
    let recipe = match Recipe::load(path) {
        Ok(recipe) => recipe,
        Err(e) => {
            println!("{e}");
            return Ok(crate::EXIT_FAILURE);
        }
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let base = crate::run::recipe_base(path);
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
                if let Err(e) = CombineScript::load(catalog.engine(), origin) {
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
            if let Err(e) = IssueTemplate::load(catalog.engine(), origin, "") {
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
            if let Err(e) = SourceSpec::parse(&crate::run::recipe_source(&base, source)) {
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
        Ok(crate::EXIT_OK)
    } else {
        for p in &problems {
            println!("{}: {p}", path.display());
        }
        Ok(crate::EXIT_FAILURE)
    }
}

