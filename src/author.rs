//! The script author's commands that are no stage's: `strategies list|check|export` and
//! `recipe check` (`try` belongs to the stage whose scripts it runs: gen or issue-gen).

use std::path::Path;

use crate::context::{Error, Outcome};
use crate::profile::Profile;
use crate::recipe::Recipe;
use crate::script::Strategy;
use crate::script::catalog::Catalog;
use crate::script::repo::CombineScript;
use crate::script::template::IssueTemplate;
use crate::source::SourceSpec;

/// `bugsmith strategies export DIR`: the built-in scripts, for editing.
pub fn export_command(dir: &Path) -> Outcome {
    let (written, kept) = crate::script::catalog::export_builtin(dir).map_err(crate::context::io(dir))?;
    println!("wrote {written} built-in files under {} ({kept} already there, left alone)", dir.display());
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
    let base = crate::recipe::base_of(path);
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
            if let Err(e) = SourceSpec::parse(&crate::recipe::source_in(&base, source)) {
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
