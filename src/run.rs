//! `bugsmith run`: a recipe's stages in order (env, gen, validate, gather, combine, mirror,
//! issues), each skipped when its inputs (recipe, profile, scripts and prompts, bugsmith's
//! version, the flags) are those of its last finished run. Every stage gets its settings the
//! way its own command does: `run`'s flags over the recipe.

use std::path::{Path, PathBuf};

use crate::context::{Context, Error, Outcome, io};
use crate::recipe::{Recipe, STAGES};
use crate::script::Origin;
use crate::script::catalog::Catalog;
use crate::settings::{
    CombineSettings, GatherSettings, GenSettings, IssueSettings, MirrorSettings, RunFlags, ValidateSettings, defaults,
};

/// The recipe's profile (relative to the recipe), else `<out>/profiles/<name>.yaml`.
fn profile_path(base: &Path, out: &Path, name: &str, recipe: &Recipe) -> PathBuf {
    recipe.profile.as_ref().map_or_else(|| out.join("profiles").join(format!("{name}.yaml")), |p| base.join(p))
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

/// `bugsmith run <recipe>`.
pub fn command(ctx: &Context, path: &Path, flags: &RunFlags) -> Outcome {
    for stage in &flags.redo {
        if !STAGES.contains(&stage.as_str()) {
            return Err(Error::Usage(format!("--redo {stage}: unknown stage (stages: {})", STAGES.join(", "))));
        }
    }
    let recipe = Recipe::load(path)?;
    let recipe_text = std::fs::read_to_string(path).map_err(io(path))?;
    let base = crate::recipe::base_of(path);
    let out = PathBuf::from(recipe.out.as_deref().unwrap_or(defaults::OUT));
    crate::log::to_file(&out);
    let name = recipe
        .name
        .clone()
        .unwrap_or_else(|| path.file_stem().map_or("run".into(), |s| s.to_string_lossy().to_string()));
    let profile = profile_path(&base, &out, &name, &recipe);
    if !profile.exists() {
        let source = recipe.source.as_ref().ok_or("the recipe names neither an existing profile nor a source")?;
        if let Some(dir) = profile.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let org = recipe.org.as_deref().unwrap_or(crate::profile::DEFAULT_ORG);
        crate::setup::profile_init_command(ctx, &crate::recipe::source_in(&base, source), &profile, org)?;
    }
    let profile_text = std::fs::read_to_string(&profile).map_err(io(&profile))?;
    let generate = GenSettings::resolve(&flags.gen_flags(), &recipe);
    let validate = ValidateSettings::resolve(&flags.validate_flags(), &recipe);
    let gather = GatherSettings::resolve(None, &recipe);
    let combine = CombineSettings::resolve(&flags.combine_flags(), &recipe);
    let mirror = MirrorSettings::resolve(&flags.mirror_flags(), &recipe);
    let issues = IssueSettings::resolve(&flags.issue_flags(), &recipe);
    // What the stages read besides the recipe and profile: a change to any re-runs them.
    let inputs = format!(
        "{}\n{}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        env!("CARGO_PKG_VERSION"),
        scripts_fingerprint(&ctx.catalog),
        generate,
        validate.backend,
        validate.containment,
        mirror,
        issues
    );
    // By default every stage, `combine` and `mirror` only when the recipe configures them.
    let stages: Vec<String> = recipe.stages.clone().unwrap_or_else(|| {
        STAGES
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
    for stage in STAGES.iter().filter(|s| stages.iter().any(|x| x == *s)) {
        let key = crate::patch::hash8(&format!("{stage}\n{recipe_text}\n{profile_text}\n{inputs}"));
        let redo = flags.force || flags.redo.iter().any(|r| r == stage);
        if state.done.get(*stage) == Some(&key) && !redo {
            println!("== {stage}: finished earlier, skipped");
            continue;
        }
        println!("== {stage}");
        tracing::info!(target: crate::log::RECORD, "stage {stage} of {}", path.display());
        let code = match *stage {
            "env" => crate::setup::env_build_command(ctx, &profile, validate.backend, &out)?,
            "gen" => {
                if generate.covered_only {
                    crate::validate::prepare_coverage(ctx, &profile, &validate, &out)?;
                }
                crate::bug_gen::command(ctx, &profile.display().to_string(), &generate, &out, false)?
            }
            "validate" => crate::validate::command(ctx, &profile, &validate, &out, false)?,
            "mirror" => crate::mirror::command(ctx, &profile, &mirror, &out, false)?,
            "combine" => {
                crate::combine::command(ctx, &profile, &combine, &out, false)?;
                // The combinations are candidates like any other: validate and gather them.
                crate::validate::command(ctx, &profile, &validate, &out, false)?;
                crate::gather::command(ctx, &profile, &gather, &out, false)?
            }
            "gather" => crate::gather::command(ctx, &profile, &gather, &out, false)?,
            _ => crate::issue_gen::command(ctx, &profile, &issues, &out, false)?,
        };
        if code != crate::EXIT_OK {
            return Ok(code);
        }
        state.done.insert((*stage).to_string(), key);
        if let Some(dir) = state_path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let json = serde_json::to_string_pretty(&state).unwrap_or_default();
        crate::files::write_atomic(&state_path, json.as_bytes()).map_err(io(&state_path))?;
    }
    Ok(crate::EXIT_OK)
}
