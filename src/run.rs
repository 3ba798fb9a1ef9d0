//! `bugsmith run`: a recipe's stages in order (env, gen, validate, gather, combine, mirror,
//! issues), each skipped when its inputs (recipe, profile, scripts and prompts, bugsmith's
//! version, the flags) are those of its last finished run. Every stage gets its settings the
//! way its own command does: `run`'s flags over the recipe.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

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

/// Stages already finished, with the key of their inputs and how long they took.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct RunState {
    done: BTreeMap<String, String>,
    #[serde(default)]
    seconds: BTreeMap<String, f64>,
}

/// One recipe, ready to run: what `run` does for its file and a campaign for each source.
pub struct RecipeRun<'a> {
    /// The recipe.
    pub recipe: &'a Recipe,
    /// Its text (part of every stage's key).
    pub text: &'a str,
    /// Where its relative paths start.
    pub base: PathBuf,
    /// The run's name (`<out>/runs/<name>.json`, `<out>/profiles/<name>.yaml`).
    pub name: String,
    /// Output directory.
    pub out: PathBuf,
}

/// How a run of the stages ended.
pub struct Finished {
    /// The exit code of the last stage run.
    pub code: u8,
    /// The stage that failed (`profile`, `env`, `gen`, …) and why.
    pub failed: Option<(String, Error)>,
    /// The first stage the deadline cut short or left unstarted (it runs on the next run).
    pub cut: Option<String>,
    /// Seconds per stage, from this run or the one that finished it earlier.
    pub seconds: BTreeMap<String, f64>,
    /// The profile the stages used.
    pub profile: PathBuf,
}

/// `bugsmith run <recipe>`.
pub fn command(ctx: &Context, path: &Path, flags: &RunFlags) -> Outcome {
    for stage in &flags.redo {
        if !STAGES.contains(&stage.as_str()) {
            return Err(Error::Usage(format!("--redo {stage}: unknown stage (stages: {})", STAGES.join(", "))));
        }
    }
    let recipe = Recipe::load(path)?;
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let out = PathBuf::from(recipe.out.as_deref().unwrap_or(defaults::OUT));
    crate::log::to_file(&out);
    let name = recipe
        .name
        .clone()
        .unwrap_or_else(|| path.file_stem().map_or("run".into(), |s| s.to_string_lossy().to_string()));
    let run = RecipeRun { recipe: &recipe, text: &text, base: crate::recipe::base_of(path), name, out };
    let finished = run_stages(ctx, &run, flags, None);
    match finished.failed {
        Some((_, error)) => Err(error),
        None => Ok(finished.code),
    }
}

/// Runs a recipe's stages in order, skipping those finished earlier with the same inputs;
/// stops at the first that fails. With a deadline, validation starts no candidate after it, and
/// the stages that run tests (`validate`, `combine`) do not start once it has passed; the others
/// still gather, mirror and describe what is valid.
pub fn run_stages(ctx: &Context, run: &RecipeRun<'_>, flags: &RunFlags, deadline: Option<Instant>) -> Finished {
    let profile = profile_path(&run.base, &run.out, &run.name, run.recipe);
    let mut finished =
        Finished { code: crate::EXIT_OK, failed: None, cut: None, seconds: BTreeMap::new(), profile: profile.clone() };
    if let Err(error) = ensure_profile(ctx, run) {
        finished.failed = Some(("profile".into(), error));
        return finished;
    }
    let state_path = run.out.join("runs").join(format!("{}.json", run.name));
    let mut state: RunState =
        std::fs::read_to_string(&state_path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    let result = stages(ctx, run, flags, deadline, &profile, &mut state, &state_path, &mut finished.cut);
    finished.seconds = state.seconds;
    match result {
        Ok(code) => finished.code = code,
        Err((stage, error)) => finished.failed = Some((stage, error)),
    }
    finished
}

/// The run's profile, written from the recipe's source when it is missing.
pub fn ensure_profile(ctx: &Context, run: &RecipeRun<'_>) -> Result<PathBuf, Error> {
    let path = profile_path(&run.base, &run.out, &run.name, run.recipe);
    let profile = path.as_path();
    if profile.exists() {
        return Ok(path);
    }
    let source = run.recipe.source.as_ref().ok_or("the recipe names neither an existing profile nor a source")?;
    if let Some(dir) = profile.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let org = run.recipe.org.as_deref().unwrap_or(crate::profile::DEFAULT_ORG);
    crate::setup::profile_init_command(ctx, &crate::recipe::source_in(&run.base, source), profile, org)?;
    Ok(path)
}

/// The stages themselves; an error names its stage. `cut` gets the first stage the deadline
/// cut short or kept from starting.
#[allow(clippy::too_many_arguments)]
fn stages(
    ctx: &Context,
    run: &RecipeRun<'_>,
    flags: &RunFlags,
    deadline: Option<Instant>,
    profile: &Path,
    state: &mut RunState,
    state_path: &Path,
    cut: &mut Option<String>,
) -> Result<u8, (String, Error)> {
    let (recipe, out) = (run.recipe, run.out.as_path());
    let profile_text = std::fs::read_to_string(profile).map_err(|e| ("profile".to_string(), io(profile)(e)))?;
    let generate = GenSettings::resolve(&flags.gen_flags(), recipe);
    let mut validate = ValidateSettings::resolve(&flags.validate_flags(), recipe);
    let gather = GatherSettings::resolve(None, recipe);
    let combine = CombineSettings::resolve(&flags.combine_flags(), recipe);
    let mirror = MirrorSettings::resolve(&flags.mirror_flags(), recipe);
    let issues = IssueSettings::resolve(&flags.issue_flags(), recipe);
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
    validate.deadline = deadline;
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
    // Once a stage runs, the ones after it read its new output: they run too.
    let mut upstream_ran = false;
    for stage in STAGES.iter().filter(|s| stages.iter().any(|x| x == *s)) {
        let failed = |error: Error| ((*stage).to_string(), error);
        let key = crate::patch::hash8(&format!("{stage}\n{}\n{profile_text}\n{inputs}", run.text));
        let redo = flags.force || flags.redo.iter().any(|r| r == stage);
        if state.done.get(*stage) == Some(&key) && !redo && !upstream_ran {
            println!("== {stage}: finished earlier, skipped");
            continue;
        }
        let past_deadline = deadline.is_some_and(|d| Instant::now() >= d);
        if past_deadline && matches!(*stage, "validate" | "combine") {
            println!("== {stage}: the time budget ran out, left for the next run");
            cut.get_or_insert_with(|| (*stage).to_string());
            upstream_ran = true;
            // Nothing validated yet: nothing for the later stages either.
            let validated = crate::profile::Profile::load(profile)
                .is_ok_and(|p| out.join("run_validation").join(p.repo_name).is_dir());
            if *stage == "validate" && !validated {
                return Ok(crate::EXIT_OK);
            }
            continue;
        }
        println!("== {stage}");
        upstream_ran = true;
        tracing::info!(target: crate::log::RECORD, "stage {stage} of {}", run.name);
        let started = Instant::now();
        let code = match *stage {
            "env" => crate::setup::env_build_command(ctx, profile, validate.backend, out),
            "gen" => (|| {
                if generate.covered_only {
                    crate::validate::prepare_coverage(ctx, profile, &validate, out)?;
                }
                match &recipe.budget {
                    // Rounds of gen and validate; the validate stage then finds them done.
                    Some(budget) => {
                        crate::budget::run_rounds(ctx, profile, &generate, &validate, budget, out, &run.name)
                            .map(|_| crate::EXIT_OK)
                    }
                    None => crate::bug_gen::command(ctx, &profile.display().to_string(), &generate, out, false),
                }
            })(),
            "validate" => crate::validate::command(ctx, profile, &validate, out, false),
            "mirror" => crate::mirror::command(ctx, profile, &mirror, out, false),
            "combine" => (|| {
                crate::combine::command(ctx, profile, &combine, out, false)?;
                // The combinations are candidates like any other: validate and gather them.
                crate::validate::command(ctx, profile, &validate, out, false)?;
                crate::gather::command(ctx, profile, &gather, out, false)
            })(),
            "gather" => crate::gather::command(ctx, profile, &gather, out, false),
            _ => crate::issue_gen::command(ctx, profile, &issues, out, false),
        };
        state.seconds.insert((*stage).to_string(), started.elapsed().as_secs_f64());
        let code = code.map_err(failed)?;
        if code != crate::EXIT_OK {
            return Ok(code);
        }
        // A validation the deadline cut short is not finished: the next run goes on with it.
        if matches!(*stage, "validate" | "combine") && deadline.is_some_and(|d| Instant::now() >= d) {
            cut.get_or_insert_with(|| (*stage).to_string());
        } else {
            state.done.insert((*stage).to_string(), key);
        }
        if let Some(dir) = state_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| failed(io(dir)(e)))?;
        }
        let json = serde_json::to_string_pretty(&state).unwrap_or_default();
        crate::files::write_atomic(state_path, json.as_bytes()).map_err(|e| failed(io(state_path)(e)))?;
    }
    Ok(crate::EXIT_OK)
}
