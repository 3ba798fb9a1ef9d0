//! Candidate generation: parse a checkout's Python files, run strategies over the entities they
//! apply to, keep the mutations that still parse, and write SWE-smith's `bug_gen` layout.
//!
//! Determinism: every (seed, strategy, entity) has its own random stream, files and entities
//! are visited in sorted order, and results are collected in that order whatever the thread
//! count, so the same seed gives byte-identical output.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use serde::Serialize;

use crate::files::write_atomic;
use crate::progress::{Problem, Progress};

use crate::ast::{self, SourceFile};
use crate::console;
use crate::context::{Context, Error, Outcome as CommandOutcome, io};
use crate::patch;
use crate::rng::Rng;
use crate::script::catalog::{Catalog, origin_id};
use crate::script::data::Params;
use crate::script::{HookParams, Origin, Strategy};
use crate::settings::{GenSettings, StrategyPlan};

/// A strategy with the params and cap a run uses.
pub struct Plan {
    /// The loaded script.
    pub strategy: Arc<Strategy>,
    /// Params from the recipe, over the script's constants (see [`Strategy::params`]).
    pub overrides: Params,
    /// Cap on this strategy's candidates.
    pub max_bugs: Option<usize>,
    /// Entities worked on at once when not one per core (LM strategies wait on the network).
    pub threads: Option<usize>,
}

impl Plan {
    /// The params the hooks get: the script's current constants under the recipe's values.
    pub fn params(&self) -> HookParams {
        self.strategy.params(&self.overrides)
    }
}

/// One candidate bug.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Strategy id.
    pub strategy: String,
    /// The strategy's explanation.
    pub explanation: String,
    /// Repository-relative file.
    pub file: String,
    /// Entity name (unqualified).
    pub entity: String,
    /// Dotted name (`Class.method`).
    pub qualified_name: String,
    /// SWE-smith signature, hashed into the folder name.
    pub signature: String,
    /// 1-based `def`/`class` line.
    pub line_start: usize,
    /// 1-based last line.
    pub line_end: usize,
    /// The entity's text after the mutation.
    pub rewrite: String,
    /// The git-format patch.
    pub diff: String,
    /// Eight-character content id of the diff.
    pub hash: String,
    /// Dollars spent on language-model calls for it.
    pub cost: f64,
}

/// Counts for one strategy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StrategyStats {
    /// Entities that met the conditions and complexity bounds.
    pub eligible: usize,
    /// Entities the strategy was run on.
    pub tried: usize,
    /// Candidates kept.
    pub candidates: usize,
    /// Entities where no attempt changed the code.
    pub unchanged: usize,
    /// Mutated files that no longer parsed (dropped).
    pub unparsable: usize,
    /// Candidates identical to an earlier one (written once).
    pub duplicates: usize,
    /// Script errors and limit hits.
    pub errors: usize,
}

/// What a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// `owner__repo.<commit8>`.
    pub repo_name: String,
    /// Python files parsed.
    pub files: usize,
    /// Files skipped (syntax errors, not UTF-8, unreadable).
    pub skipped_files: Vec<Problem>,
    /// Entities found.
    pub entities: usize,
    /// Per strategy, by id.
    pub strategies: BTreeMap<String, StrategyStats>,
    /// Script errors, each with file:line:column and the entity.
    pub script_errors: Vec<Problem>,
    /// Candidates written.
    pub candidates: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Where the candidates are.
    pub output: String,
    /// Procedural candidates of earlier runs still in the output (`validate` would take them).
    #[serde(skip_serializing_if = "is_zero")]
    pub earlier_candidates: usize,
    /// Earlier candidates `--clean` removed.
    #[serde(skip_serializing_if = "is_zero")]
    pub removed_candidates: usize,
    /// Entities left out because no test executes them (`--covered-only`).
    #[serde(skip_serializing_if = "is_zero")]
    pub skipped_entities: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Report {
    /// Files per second.
    pub fn files_per_second(&self) -> f64 {
        self.files as f64 / self.seconds.max(1e-9)
    }
    /// Entities per second.
    pub fn entities_per_second(&self) -> f64 {
        self.entities as f64 / self.seconds.max(1e-9)
    }
    /// Candidates per second.
    pub fn candidates_per_second(&self) -> f64 {
        self.candidates as f64 / self.seconds.max(1e-9)
    }
}

/// Whether a repository-relative path is a Python source file `gen` should read.
pub fn is_candidate_source(path: &str) -> bool {
    path.ends_with(".py") && !ast::is_test_path(path) && !path.split('/').any(|p| p.starts_with('.'))
}

/// Reads and parses the files; unreadable, non-UTF-8 and unparsable ones become problems.
pub fn parse_files(root: &Path, paths: &[String], progress: &dyn Progress) -> (Vec<SourceFile>, Vec<Problem>) {
    progress.phase("parsing", paths.len() as u64);
    let results: Vec<Result<SourceFile, Problem>> = paths
        .par_iter()
        .map(|path| {
            let result = parse_one(root, path);
            progress.advance(1);
            result
        })
        .collect();
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for r in results {
        match r {
            Ok(f) => files.push(f),
            Err(p) => {
                progress.problem(&p);
                problems.push(p);
            }
        }
    }
    (files, problems)
}

/// Reads and parses one file; only files inside the checkout are read (a symlink, or a path
/// through a symlinked folder, that leaves it is refused), and none over the size limit.
fn parse_one(root: &Path, path: &str) -> Result<SourceFile, Problem> {
    let problem = |message: String| Problem { location: path.to_string(), message };
    let full = root.join(path);
    let real = std::fs::canonicalize(&full).map_err(|e| problem(format!("cannot read: {e}")))?;
    let real_root = std::fs::canonicalize(root).map_err(|e| problem(format!("cannot read the checkout: {e}")))?;
    if !real.starts_with(&real_root) {
        return Err(problem(format!("a symlink to {}, outside the checkout; skipped", real.display())));
    }
    if std::fs::symlink_metadata(&full).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(problem(format!("a symlink to {}; skipped (the file is read under its own path)", real.display())));
    }
    let size = std::fs::metadata(&real).map_err(|e| problem(format!("cannot read: {e}")))?.len();
    if size > ast::MAX_SOURCE_BYTES as u64 {
        return Err(problem(format!(
            "{size} bytes, over the {} MiB limit for a source file; skipped",
            ast::MAX_SOURCE_BYTES >> 20
        )));
    }
    let bytes = std::fs::read(&real).map_err(|e| problem(format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        Problem {
            location: format!("{path}:{line}"),
            message: format!("not UTF-8 (invalid byte at offset {at}); skipped"),
        }
    })?;
    SourceFile::parse(path, text).map_err(|e| Problem {
        location: format!("{path}:{}:{}", e.line, e.column),
        message: format!("syntax error: {}; skipped", e.message),
    })
}

/// The result of running one strategy on one entity.
pub enum Outcome {
    /// A candidate.
    Candidate(Box<Candidate>),
    /// No attempt changed the code; `unparsable` attempts produced invalid Python.
    Nothing {
        /// Attempts whose result did not parse.
        unparsable: usize,
    },
    /// The script failed.
    Error(Problem),
}

/// Runs a strategy on one entity: up to `max_attempts` calls of `mutate` until one yields a
/// change that still parses.
pub fn mutate_entity(plan: &Plan, params: &HookParams, file: &SourceFile, index: usize, seed: u64) -> Outcome {
    let entity = &file.entities()[index];
    let key = [
        seed.to_string(),
        plan.strategy.id.clone(),
        file.path().to_string(),
        entity.qualified_name.clone(),
        entity.start.to_string(),
    ];
    let rng = Arc::new(Mutex::new(Rng::from_key(&key.iter().map(String::as_str).collect::<Vec<_>>())));
    let attempts = params.int("max_attempts").unwrap_or(5).max(1);
    let location = || {
        format!("{} ({} at {}:{})", plan.strategy.display_path(), entity.qualified_name, file.path(), entity.line_start)
    };
    let mut unparsable = 0;
    crate::script::lm_api::take_cost();
    let mut cost = 0.0;
    for _ in 0..attempts {
        let mutated_edits = plan.strategy.mutate(file, index, params, &rng);
        cost += crate::script::lm_api::take_cost();
        let edits = match mutated_edits {
            Ok(edits) => edits,
            Err(e) => {
                return Outcome::Error(Problem {
                    location: format!("{}:{}:{}", e.path, e.line, e.column),
                    message: format!(
                        "{} (entity {} at {}:{})",
                        e.message,
                        entity.qualified_name,
                        file.path(),
                        entity.line_start
                    ),
                });
            }
        };
        if edits.is_empty() {
            continue;
        }
        let text = file.text();
        let bounds = patch::line_bounds(text, file.lines(), entity.start, entity.end);
        let mutated = match patch::apply(text, &edits, bounds) {
            Ok(m) => m,
            Err(e) => return Outcome::Error(Problem { location: location(), message: e.to_string() }),
        };
        if mutated == text {
            continue;
        }
        let delta = mutated.len() as i64 - text.len() as i64;
        let region = &mutated[bounds.0 as usize..(i64::from(bounds.1) + delta) as usize];
        if !ast::check_region_syntax(region, &entity.indent, || mutated.clone()) {
            unparsable += 1;
            continue;
        }
        let Some(diff) = patch::render_diff(file.path(), text, &mutated) else { continue };
        let rewrite_end = (i64::from(entity.end) + delta) as usize;
        return Outcome::Candidate(Box::new(Candidate {
            strategy: plan.strategy.id.clone(),
            explanation: plan.strategy.explanation(),
            file: file.path().to_string(),
            entity: entity.name.clone(),
            qualified_name: entity.qualified_name.clone(),
            signature: entity.signature.clone(),
            line_start: entity.line_start,
            line_end: entity.line_end,
            rewrite: dedent(&mutated[entity.start as usize..rewrite_end], &entity.indent),
            hash: patch::hash8(&diff),
            diff,
            cost,
        }));
    }
    Outcome::Nothing { unparsable }
}

/// SWE-smith's rewrite format: the entity's text with its indentation removed from every line
/// after the first (the first starts at the keyword already).
fn dedent(text: &str, indent: &str) -> String {
    if indent.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        out.push_str(if i == 0 { line } else { line.strip_prefix(indent).unwrap_or(line) });
    }
    out
}

/// [`mutate_entity`], with a panic (a bug in bugsmith, not in the script) turned into an error
/// for this entity so the run goes on.
fn guarded(plan: &Plan, params: &HookParams, file: &SourceFile, index: usize, seed: u64) -> Outcome {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mutate_entity(plan, params, file, index, seed)))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_default();
            let entity = &file.entities()[index];
            Outcome::Error(Problem {
                location: format!(
                    "{} ({} at {}:{})",
                    plan.strategy.display_path(),
                    entity.qualified_name,
                    file.path(),
                    entity.line_start
                ),
                message: format!("internal error, please report it: {what}"),
            })
        })
}

/// Runs every plan over the files; returns candidates in deterministic order and fills `report`.
pub fn generate(
    files: &[SourceFile],
    plans: &[Plan],
    seed: u64,
    progress: &dyn Progress,
    report: &mut Report,
) -> Vec<Candidate> {
    generate_for(files, plans, seed, progress, report, &|_, _| true)
}

/// [`generate`] over the entities `keep` accepts (file, entity index); the others are counted
/// in `report.skipped_entities`.
pub fn generate_for(
    files: &[SourceFile],
    plans: &[Plan],
    seed: u64,
    progress: &dyn Progress,
    report: &mut Report,
    keep: &(dyn Fn(&SourceFile, usize) -> bool + Sync),
) -> Vec<Candidate> {
    let mut all = Vec::new();
    let mut seen = HashSet::new();
    let every: Vec<(usize, usize)> =
        files.iter().enumerate().flat_map(|(f, file)| (0..file.entities().len()).map(move |e| (f, e))).collect();
    let entities: Vec<(usize, usize)> = every.iter().copied().filter(|&(f, e)| keep(&files[f], e)).collect();
    report.skipped_entities = every.len() - entities.len();
    report.entities = entities.len();
    for plan in plans {
        let stats = report.strategies.entry(plan.strategy.id.clone()).or_default();
        // A script edited during a long run is picked up here, between strategies.
        if let Some(err) = plan.strategy.refresh() {
            let problem = Problem {
                location: format!("{}:{}:{}", err.path, err.line, err.column),
                message: format!("{}; the previous version is used", err.message),
            };
            progress.problem(&problem);
            report.script_errors.push(problem);
        }
        let params = plan.params();
        let mut eligible = Vec::new();
        for &(f, e) in &entities {
            match plan.strategy.applies_to(&files[f], e, &params) {
                Ok(true) => eligible.push((f, e)),
                Ok(false) => {}
                Err(err) => {
                    stats.errors += 1;
                    let problem =
                        Problem { location: format!("{}:{}:{}", err.path, err.line, err.column), message: err.message };
                    progress.problem(&problem);
                    report.script_errors.push(problem);
                }
            }
        }
        stats.eligible = eligible.len();
        if plan.max_bugs.is_some() {
            Rng::from_key(&[&seed.to_string(), &plan.strategy.id, "sample"]).shuffle(&mut eligible);
        }
        let cap = plan.max_bugs.unwrap_or(usize::MAX);
        // Without a cap the bar counts entities tried; with one, candidates kept.
        let counts_tries = plan.max_bugs.is_none();
        progress.phase(&plan.strategy.id, eligible.len().min(cap) as u64);
        let mut kept = 0;
        let mut next = 0;
        while kept < cap && next < eligible.len() {
            // With a cap, work in chunks so a small cap does not run the whole repository.
            let chunk = if plan.max_bugs.is_some() { (2 * (cap - kept)).max(16) } else { eligible.len() };
            let batch = &eligible[next..(next + chunk).min(eligible.len())];
            next += batch.len();
            let work = || -> Vec<Outcome> {
                batch
                    .par_iter()
                    .map(|&(f, e)| {
                        let outcome = guarded(plan, &params, &files[f], e, seed);
                        if counts_tries {
                            progress.advance(1);
                        }
                        outcome
                    })
                    .collect()
            };
            let pool = plan.threads.and_then(|n| ast::deep_stack_pool(Some(n)).build().ok());
            let outcomes = match &pool {
                Some(pool) => pool.install(work),
                None => work(),
            };
            for outcome in outcomes {
                if kept >= cap {
                    break;
                }
                stats.tried += 1;
                match outcome {
                    Outcome::Candidate(c) => {
                        if seen.insert(c.diff.clone()) {
                            kept += 1;
                            stats.candidates += 1;
                            if !counts_tries {
                                progress.advance(1);
                            }
                            all.push(*c);
                        } else {
                            stats.duplicates += 1;
                        }
                    }
                    Outcome::Nothing { unparsable } => {
                        stats.unparsable += unparsable;
                        stats.unchanged += 1;
                    }
                    Outcome::Error(problem) => {
                        stats.errors += 1;
                        progress.problem(&problem);
                        report.script_errors.push(problem);
                    }
                }
            }
        }
    }
    report.candidates = all.len();
    all
}

/// The folder of an entity's candidates: `<file with / as __>/<name>_<sha256(signature)[:8]>`.
pub fn candidate_dir(bug_gen: &Path, candidate: &Candidate) -> PathBuf {
    bug_gen.join(candidate.file.replace('/', "__")).join(format!(
        "{}_{}",
        candidate.entity,
        patch::sha256_hex8(&candidate.signature)
    ))
}

/// Writes candidates under `bug_gen`, in parallel (atomically; an identical existing file is
/// left alone).
pub fn write_candidates(bug_gen: &Path, candidates: &[Candidate]) -> std::io::Result<()> {
    candidates.par_iter().try_for_each(|c| write_candidate(bug_gen, c))
}

fn write_candidate(bug_gen: &Path, c: &Candidate) -> std::io::Result<()> {
    let dir = candidate_dir(bug_gen, c);
    std::fs::create_dir_all(&dir)?;
    let id = format!("{}__{}", c.strategy, c.hash);
    let metadata = crate::records::CandidateMetadata {
        cost: c.cost,
        explanation: c.explanation.clone(),
        rewrite: Some(c.rewrite.clone()),
        strategy: c.strategy.clone(),
        entity: Some(c.qualified_name.clone()),
        file: Some(c.file.clone()),
        line_start: Some(c.line_start),
        line_end: Some(c.line_end),
        signature: Some(c.signature.clone()),
        ..Default::default()
    };
    let json = metadata.to_json();
    write_atomic(&dir.join(format!("bug__{id}.diff")), c.diff.as_bytes())?;
    write_atomic(&dir.join(format!("metadata__{id}.json")), json.as_bytes())
}

/// Candidate patches under `bug_gen` that this run did not write, leaving out what other
/// stages made there (strategies for which `keep` holds: combine and mirror scripts).
pub fn earlier_candidates(bug_gen: &Path, current: &[Candidate], keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let ours: HashSet<PathBuf> = current
        .iter()
        .map(|c| candidate_dir(bug_gen, c).join(format!("bug__{}__{}.diff", c.strategy, c.hash)))
        .collect();
    let mut found: Vec<PathBuf> = walkdir::WalkDir::new(bug_gen)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .filter(|path| {
            let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let Some(id) = name.strip_prefix("bug__").and_then(|n| n.strip_suffix(".diff")) else { return false };
            !keep(crate::ids::LocalId::parse(id).strategy()) && !ours.contains(path)
        })
        .collect();
    found.sort();
    found
}

/// Removes candidate patches and their metadata files.
pub fn remove_candidates(patches: &[PathBuf]) -> std::io::Result<()> {
    for patch in patches {
        std::fs::remove_file(patch)?;
        let name =
            patch.file_name().map(|n| n.to_string_lossy().replacen("bug__", "metadata__", 1)).unwrap_or_default();
        let _ = std::fs::remove_file(patch.with_file_name(name.replace(".diff", ".json")));
        // An entity folder left empty goes too.
        if let Some(dir) = patch.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
    Ok(())
}

/// The one-screen summary of a `gen` run.
pub fn print_gen_summary(report: &Report) {
    println!("repo        {}", report.repo_name);
    println!("output      {}", report.output);
    println!(
        "parsed      {} files ({} skipped), {} entities",
        report.files,
        report.skipped_files.len(),
        report.entities
    );
    if report.skipped_entities > 0 {
        println!("skipped     {} entities no test executes (--covered-only)", report.skipped_entities);
    }
    println!();
    println!(
        "{:<30} {:>8} {:>6} {:>10} {:>9} {:>10} {:>10} {:>6}",
        "strategy", "eligible", "tried", "candidates", "unchanged", "unparsable", "duplicates", "errors"
    );
    for (id, s) in &report.strategies {
        println!(
            "{:<30} {:>8} {:>6} {:>10} {:>9} {:>10} {:>10} {:>6}",
            id, s.eligible, s.tried, s.candidates, s.unchanged, s.unparsable, s.duplicates, s.errors
        );
    }
    println!();
    println!(
        "{} candidates in {:.2} s ({:.0} files/s, {:.0} entities/s, {:.0} candidates/s)",
        report.candidates,
        report.seconds,
        report.files_per_second(),
        report.entities_per_second(),
        report.candidates_per_second()
    );
    let problems: Vec<&Problem> = report.skipped_files.iter().chain(&report.script_errors).collect();
    if !problems.is_empty() {
        println!("{} problems:", problems.len());
        for p in problems.iter().take(crate::console::SHOWN_PROBLEMS) {
            println!("  {p}");
        }
        if problems.len() > crate::console::SHOWN_PROBLEMS {
            println!("  … {} more (use --json for all)", problems.len() - crate::console::SHOWN_PROBLEMS);
        }
    }
}

/// `bugsmith gen`: candidates for `source` (a profile file or a source) under
/// `<out>/bug_gen/<repo_name>/`.
pub fn command(ctx: &Context, source: &str, settings: &GenSettings, out: &Path, json: bool) -> CommandOutcome {
    let started = std::time::Instant::now();
    let lm = ctx.lm(settings.lm.clone())?;
    let catalog = ctx.catalog_with(&lm);
    let (plans, load_problems) = plans(&catalog, settings, lm.config().concurrency.max(1))?;
    console::status(json, &format!("fetching {source} …"));
    let (checkout, excluded) = if is_profile_path(source) {
        let profile = ctx.profile(Path::new(source))?;
        (ctx.checkout(&profile)?, profile.exclude_paths)
    } else {
        (ctx.fetch(source)?, Vec::new())
    };
    let only = file_globs(&settings.files)?;
    let paths: Vec<String> = crate::git::tracked_files(&checkout.root)?
        .into_iter()
        .filter(|p| is_candidate_source(p) && !excluded.iter().any(|x| p.starts_with(x.as_str())))
        .filter(|p| only.as_ref().is_none_or(|globs| globs.is_match(p)))
        .collect();
    if paths.is_empty() && only.is_some() {
        return Err(Error::Usage(format!("no Python source file matches --file {}", settings.files.join(" --file "))));
    }
    let bar = console::Bar::new(json);
    let (files, skipped) = parse_files(&checkout.root, &paths, &bar);
    let bug_gen = out.join("bug_gen").join(&checkout.repo_name);
    let mut report = Report {
        repo_name: checkout.repo_name.clone(),
        files: files.len(),
        skipped_files: skipped,
        output: bug_gen.display().to_string(),
        script_errors: load_problems,
        ..Report::default()
    };
    let candidates = if settings.covered_only {
        let coverage = covered_only_filter(out, &checkout.repo_name)?;
        // A function counts by its body: its `def` line runs at import.
        let keep = |file: &SourceFile, e: usize| {
            let entity = &file.entities()[e];
            let first = entity.line_start as u32 + u32::from(entity.kind == ast::EntityKind::Function);
            coverage.covers_lines(file.path(), first, (entity.line_end as u32).max(first))
        };
        generate_for(&files, &plans, settings.seed, &bar, &mut report, &keep)
    } else {
        generate(&files, &plans, settings.seed, &bar, &mut report)
    };
    bar.finish();
    write_candidates(&bug_gen, &candidates).map_err(io(&bug_gen))?;
    // Combine and mirror candidates are never this stage's to remove.
    let other_stages: Vec<String> =
        ["combine", "mirror"].iter().flat_map(|k| catalog.origins(k)).map(|o| origin_id(&o)).collect();
    let earlier =
        earlier_candidates(&bug_gen, &candidates, |s| other_stages.iter().any(|o| o == s) || s.starts_with("pr_"));
    if settings.clean {
        remove_candidates(&earlier).map_err(io(&bug_gen))?;
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
    crate::context::write_ledger(out, &lm)?;
    crate::context::print_summary(json, &report, print_gen_summary);
    Ok(crate::EXIT_OK)
}

/// The run's plans: the settings' strategies (or every procedural one), each with its params
/// over the script's defaults. Scripts that fail to load are returned as problems; the others
/// still run.
fn plans(catalog: &Catalog, settings: &GenSettings, lm_concurrency: usize) -> Result<(Vec<Plan>, Vec<Problem>), Error> {
    let chosen: Vec<StrategyPlan> = settings.strategies.clone().unwrap_or_else(|| {
        catalog
            .origins("procedural")
            .iter()
            .map(|o| StrategyPlan { spec: origin_id(o), overrides: Params::default(), max_bugs: settings.max_bugs })
            .collect()
    });
    let mut plans = Vec::new();
    let mut problems = Vec::new();
    for chosen in chosen {
        let origin = catalog.resolve_strategy(&chosen.spec)?;
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
        // LM strategies wait on the network: as many at once as the client allows.
        let threads = crate::script::catalog::is_lm(&strategy.origin).then_some(lm_concurrency);
        plans.push(Plan {
            strategy: Arc::new(strategy),
            overrides: chosen.overrides,
            max_bugs: chosen.max_bugs,
            threads,
        });
    }
    if plans.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(Error::Usage(format!("no strategy could be loaded:\n  {}", list.join("\n  "))));
    }
    Ok((plans, problems))
}

/// The baseline's per-test coverage under `out`, for `--covered-only`.
fn covered_only_filter(out: &Path, repo_name: &str) -> Result<crate::coverage::TestCoverage, Error> {
    let path = out.join("run_validation").join(repo_name).join(format!("{repo_name}.ref")).join("coverage.json");
    let json = std::fs::read_to_string(&path).map_err(|_| {
        Error::Usage(format!(
            "--covered-only needs the baseline's per-test coverage ({}): run `bugsmith validate` on the profile first, or `bugsmith run` with `covered_only: true`",
            path.display()
        ))
    })?;
    crate::coverage::TestCoverage::parse(&json).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))
}

/// `--file` globs as one matcher (`None`: every file).
fn file_globs(patterns: &[String]) -> Result<Option<globset::GlobSet>, Error> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = globset::GlobSetBuilder::new();
    for pattern in patterns {
        builder.add(globset::Glob::new(pattern).map_err(|e| Error::Usage(format!("--file {pattern}: {e}")))?);
    }
    builder.build().map(Some).map_err(|e| Error::Usage(e.to_string()))
}

/// Whether `gen`'s argument names a profile file rather than a source.
pub fn is_profile_path(source: &str) -> bool {
    (source.ends_with(".yaml") || source.ends_with(".yml")) && Path::new(source).is_file()
}

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

fn resolve_one(catalog: &Catalog, spec: &str) -> Result<Arc<Strategy>, Error> {
    let origin = catalog.resolve("procedural", spec)?;
    Ok(Arc::new(Strategy::load(catalog.engine(), origin)?))
}

/// `bugsmith try <strategy> <file>`: the diffs a strategy makes on one file; with `--watch`,
/// again whenever the file or the script changes.
pub fn try_command(ctx: &Context, args: &TryRequest) -> CommandOutcome {
    let catalog = &ctx.catalog;
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

fn try_once(strategy: &Arc<Strategy>, args: &TryRequest) -> CommandOutcome {
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
        match mutate_entity(&plan, &params, &file, index, args.seed) {
            Outcome::Candidate(c) => print!("{}", c.diff),
            Outcome::Nothing { unparsable: 0 } => println!("# no change"),
            Outcome::Nothing { unparsable } => println!("# no change ({unparsable} attempts did not parse)"),
            Outcome::Error(p) => println!("# error: {p}"),
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
