//! Issue generation: fill each task instance's `problem_statement` with an issue template (a
//! script under `strategies/issues/`), record it under `issue_gen/<repo_name>/`, and flag
//! statements that leak the answer (quote the patch's changed lines or name F2P tests).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ast::SourceFile;
use crate::console;
use crate::context::{Context, Error, Outcome};
use crate::files::write_atomic;
use crate::grading;
use crate::progress::{Problem, Progress};
use crate::records::{TaskInstance, read_instances, write_instances};
use crate::script::Origin;
use crate::script::data::{InstanceData, Params};
use crate::script::template::IssueTemplate;
use crate::settings::IssueSettings;

/// What was stored for one instance.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Artifact {
    /// Template id.
    pub template: String,
    /// Seed.
    pub seed: u64,
    /// The statement.
    pub problem_statement: String,
    /// What the leakage check found.
    pub leaks: Vec<String>,
    /// Dollars spent on it.
    pub cost: f64,
    /// Hash of the template, its prompts and params, and the patch it was written for.
    #[serde(default)]
    pub inputs: String,
}

/// What a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IssueSummary {
    /// Instances in the file.
    pub instances: usize,
    /// Statements written now.
    pub written: usize,
    /// Statements kept from an earlier run with the same template and seed.
    pub reused: usize,
    /// Statements the leakage check flagged.
    pub leaking: usize,
    /// Failures (instance: reason).
    pub errors: Vec<String>,
    /// Dollars spent now.
    pub cost: f64,
}

/// The answer a statement must not give away: quoted changed lines of the patch, or F2P ids.
pub fn leaks(statement: &str, patch: &str, fail_to_pass: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for line in patch.lines() {
        let Some(changed) = line.strip_prefix('+').or_else(|| line.strip_prefix('-')) else { continue };
        if line.starts_with("+++") || line.starts_with("---") {
            continue;
        }
        let code = changed.trim();
        // Short lines (`pass`, `else:`, `return x`) appear in any prose about code.
        if code.len() >= 16 && statement.contains(code) && !found.contains(&format!("patch line: {code}")) {
            found.push(format!("patch line: {code}"));
        }
    }
    for id in fail_to_pass {
        if statement.contains(id.as_str()) {
            found.push(format!("test id: {id}"));
        }
    }
    found
}

/// What a candidate's metadata says: explanation, entity, and for PR mirrors the original
/// change's title and issue text.
#[derive(Default)]
struct CandidateInfo {
    explanation: String,
    entity: String,
    title: String,
    issue_text: String,
}

/// Candidate metadata by instance id.
fn metadata_index(bug_gen: &Path, repo_name: &str) -> BTreeMap<String, CandidateInfo> {
    let mut index = BTreeMap::new();
    for entry in walkdir::WalkDir::new(bug_gen).into_iter().filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(id) = name.strip_prefix("metadata__").and_then(|n| n.strip_suffix(".json")) else { continue };
        let Some(metadata) = crate::records::CandidateMetadata::read(entry.path()) else { continue };
        let info = CandidateInfo {
            explanation: metadata.explanation,
            entity: metadata.entity.unwrap_or_default(),
            title: metadata.title.unwrap_or_default(),
            issue_text: metadata.issue_text.unwrap_or_default(),
        };
        index.insert(format!("{repo_name}.{id}"), info);
    }
    index
}

/// The source of each F2P test function, from the clean checkout.
fn test_sources(checkout: &Path, fail_to_pass: &[String]) -> BTreeMap<String, String> {
    let mut sources = BTreeMap::new();
    let mut parsed: BTreeMap<String, Option<SourceFile>> = BTreeMap::new();
    for id in fail_to_pass {
        let Some((file, rest)) = id.split_once("::") else { continue };
        let name = rest.split('[').next().unwrap_or(rest).replace("::", ".");
        let source = parsed.entry(file.to_string()).or_insert_with(|| {
            std::fs::read_to_string(checkout.join(file)).ok().and_then(|t| SourceFile::parse(file, t).ok())
        });
        if let Some(source) = source
            && let Some(entity) = source.entities().iter().find(|e| e.qualified_name == name)
        {
            let text = &source.text()[entity.start as usize..entity.end as usize];
            sources.insert(id.clone(), text.to_string());
        }
    }
    sources
}

/// Everything a template sees about one instance.
fn instance_data(
    instance: &TaskInstance,
    repo_name: &str,
    checkout: &Path,
    run_dir: &Path,
    meta: Option<&CandidateInfo>,
) -> InstanceData {
    let dir = run_dir.join(&instance.instance_id);
    let failures = std::fs::read_to_string(dir.join("junit.xml"))
        .map(|xml| grading::junit_failures(&xml).into_iter().collect())
        .unwrap_or_default();
    // Instances gathered before the `strategy` field existed: the id says it.
    let strategy = if instance.strategy.is_empty() {
        crate::ids::InstanceId::parse(repo_name, &instance.instance_id)
            .map(|id| id.local.strategy().to_string())
            .unwrap_or_default()
    } else {
        instance.strategy.clone()
    };
    let text = |f: fn(&CandidateInfo) -> &String| meta.map(f).cloned().unwrap_or_default();
    InstanceData {
        instance_id: instance.instance_id.clone(),
        repo: instance.repo.clone(),
        patch: instance.patch.clone(),
        fail_to_pass: instance.fail_to_pass.clone(),
        pass_to_pass: instance.pass_to_pass.clone(),
        image_name: instance.image_name.clone(),
        strategy,
        bug_type: text(|m| &m.explanation),
        gold_files: crate::patch::files_of(&instance.patch),
        gold_funcs: meta.map(|m| m.entity.clone()).filter(|f| !f.is_empty()).into_iter().collect(),
        original_title: text(|m| &m.title),
        original_issue: text(|m| &m.issue_text),
        test_output: crate::records::without_markers(
            &std::fs::read_to_string(dir.join("test_output.txt")).unwrap_or_default(),
        )
        .to_string(),
        failures,
        test_sources: test_sources(checkout, &instance.fail_to_pass),
    }
}

/// The statement `template` writes for one instance, nothing stored (`bugsmith try
/// <template> --instance <id>`): the text and the leaks the check finds in it.
pub fn preview(
    repo_name: &str,
    checkout: &Path,
    out: &Path,
    template: &IssueTemplate,
    seed: u64,
    instance_id: &str,
) -> Result<(String, Vec<String>), Error> {
    let json_path = out.join("task_insts").join(format!("{repo_name}.json"));
    let instances = read_instances(&json_path).map_err(|e| format!("{e}: run `bugsmith gather` first"))?;
    let instance = instances
        .iter()
        .find(|i| i.instance_id == instance_id)
        .ok_or_else(|| format!("no instance {instance_id} in {}", json_path.display()))?;
    let meta = metadata_index(&out.join("bug_gen").join(repo_name), repo_name);
    let data = instance_data(
        instance,
        repo_name,
        checkout,
        &out.join("run_validation").join(repo_name),
        meta.get(instance_id),
    );
    let rendered = template.render(&data, &Params::default(), seed).map_err(|e| e.to_string())?;
    let leaks = leaks(&rendered.text, &instance.patch, &instance.fail_to_pass);
    Ok((rendered.text, leaks))
}

/// Writes problem statements into `task_insts/<repo_name>.json` (and `.jsonl`).
#[allow(clippy::too_many_arguments)]
pub fn issue_gen(
    repo_name: &str,
    checkout: &Path,
    out: &Path,
    template: &IssueTemplate,
    params: &Params,
    seed: u64,
    redo: bool,
    threads: usize,
    progress: &dyn Progress,
) -> Result<IssueSummary, Error> {
    let json_path = out.join("task_insts").join(format!("{repo_name}.json"));
    let mut instances = read_instances(&json_path).map_err(|e| format!("{e}: run `bugsmith gather` first"))?;
    let artifacts = out.join("issue_gen").join(repo_name);
    std::fs::create_dir_all(&artifacts).map_err(|e| format!("{}: {e}", artifacts.display()))?;
    let meta = metadata_index(&out.join("bug_gen").join(repo_name), repo_name);
    let run_dir = out.join("run_validation").join(repo_name);
    let mut summary = IssueSummary { instances: instances.len(), ..IssueSummary::default() };
    progress.phase(&format!("issues ({})", template.id), instances.len() as u64);
    let fingerprint = template.fingerprint(params);
    // Each statement is its own artefact file, so instances render in parallel (language-model
    // templates spend their time waiting on the server).
    let render_one = |instance: &TaskInstance| -> Result<(Artifact, bool), String> {
        let path = artifacts.join(format!("{}.json", instance.instance_id));
        let inputs = crate::patch::hash8(&format!("{fingerprint}\n{}\n{:?}", instance.patch, instance.fail_to_pass));
        let stored = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str::<Artifact>(&t).ok());
        if let Some(a) = stored
            && !redo
            && a.template == template.id
            && a.seed == seed
            && a.inputs == inputs
        {
            return Ok((a, true));
        }
        let data = instance_data(instance, repo_name, checkout, &run_dir, meta.get(&instance.instance_id));
        let rendered = template.render(&data, params, seed).map_err(|e| {
            let problem = Problem { location: instance.instance_id.clone(), message: e.to_string() };
            progress.problem(&problem);
            problem.to_string()
        })?;
        let artifact = Artifact {
            template: template.id.clone(),
            seed,
            leaks: leaks(&rendered.text, &instance.patch, &instance.fail_to_pass),
            problem_statement: rendered.text,
            cost: rendered.cost,
            inputs,
        };
        let written = serde_json::to_string_pretty(&artifact)
            .map_err(|e| e.to_string())
            .and_then(|json| write_atomic(&path, json.as_bytes()).map_err(|e| format!("{}: {e}", path.display())));
        if let Err(message) = written {
            let problem = Problem { location: instance.instance_id.clone(), message };
            progress.problem(&problem);
            return Err(problem.to_string());
        }
        Ok((artifact, false))
    };
    let work = || -> Vec<Result<(Artifact, bool), String>> {
        instances
            .par_iter()
            .map(|instance| {
                let result = render_one(instance);
                progress.advance(1);
                result
            })
            .collect()
    };
    let outcomes = match crate::ast::deep_stack_pool(Some(threads)).build() {
        Ok(pool) => pool.install(work),
        Err(_) => work(),
    };
    for (instance, outcome) in instances.iter_mut().zip(outcomes) {
        match outcome {
            Ok((artifact, reused)) => {
                if reused {
                    summary.reused += 1;
                } else {
                    summary.written += 1;
                    summary.cost += artifact.cost;
                }
                if !artifact.leaks.is_empty() {
                    summary.leaking += 1;
                }
                instance.problem_statement = artifact.problem_statement;
            }
            Err(error) => summary.errors.push(error),
        }
    }
    write_instances(&json_path, &instances)?;
    Ok(summary)
}

/// `bugsmith issue-gen`: a problem statement for every instance of the profile's repository.
pub fn command(ctx: &Context, profile_path: &Path, settings: &IssueSettings, out: &Path, json: bool) -> Outcome {
    let profile = ctx.profile(profile_path)?;
    let checkout = ctx.checkout(&profile)?;
    let lm = ctx.lm(settings.lm.clone())?;
    let catalog = ctx.catalog_with(&lm);
    let origin = catalog.resolve("issues", &settings.template)?;
    let model = format!("{} {}", lm.config().model, lm.config().temperature);
    let template = IssueTemplate::load(catalog.engine(), origin, &model)?;
    let bar = console::Bar::new(json);
    let summary = issue_gen(
        &profile.repo_name,
        &checkout.root,
        out,
        &template,
        &settings.params,
        settings.seed,
        settings.redo,
        lm.config().concurrency,
        &bar,
    );
    bar.finish();
    let summary = summary?;
    crate::context::write_ledger(out, &lm)?;
    crate::context::print_summary(json, &summary, |summary| {
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
    });
    Ok(if summary.errors.is_empty() { crate::EXIT_OK } else { crate::EXIT_FAILURE })
}

/// `try <template> --instance <id>`: renders the statement (again whenever the template
/// changes, with `--watch`).
/// What `try <template> --instance <id>` is asked for.
#[derive(Clone, Debug)]
pub struct PreviewRequest {
    /// Template id or path.
    pub template: String,
    /// The instance.
    pub instance: String,
    /// Output directory the instance came from.
    pub out: std::path::PathBuf,
    /// Profile of its repository (default: found under `<out>/profiles/`).
    pub profile: Option<std::path::PathBuf>,
    /// Seed.
    pub seed: u64,
    /// Render again whenever the template changes.
    pub watch: bool,
}

/// `bugsmith try <template> --instance <id>`: the statement the template writes for one
/// instance, nothing stored; with `--watch`, again whenever the template changes.
pub fn try_command(ctx: &Context, args: &PreviewRequest) -> Outcome {
    let instance = args.instance.as_str();
    let catalog = &ctx.catalog;
    let explicit: Vec<PathBuf> = args.profile.iter().cloned().collect();
    let (profiles, _) =
        crate::context::find_profiles(&explicit, &args.out, &args.out.join("task_insts").join("x.json"));
    let profile = profiles
        .into_values()
        .filter(|p| crate::ids::InstanceId::parse(&p.repo_name, instance).is_some())
        .max_by_key(|p| p.repo_name.len())
        .ok_or_else(|| format!("no profile under {} for {instance}", args.out.join("profiles").display()))?;
    let checkout = ctx.checkout(&profile)?;
    let origin = catalog.resolve("issues", &args.template)?;
    let path = match &origin {
        Origin::File(path) => Some(path.clone()),
        Origin::Builtin(..) => None,
    };
    let stamp = || path.as_deref().and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    // Loaded once and refreshed (hot reload) on each change; a first version that does not
    // load is retried while watching.
    let mut template: Option<IssueTemplate> = None;
    loop {
        let loaded = match &template {
            Some(t) => t.refresh().map_or(Ok(()), |e| Err(Error::from(e))),
            None => IssueTemplate::load(catalog.engine(), origin.clone(), "")
                .map(|t| template = Some(t))
                .map_err(Error::from),
        };
        let rendered = loaded.and_then(|()| {
            let template = template.as_ref().ok_or("no template")?;
            preview(&profile.repo_name, &checkout.root, &args.out, template, args.seed, instance)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quoting_changed_lines_or_naming_tests_are_flagged() {
        let patch = "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,2 @@\n-    total = price * quantity\n+    total = price / quantity\n     pass\n";
        let f2p = vec!["tests/test_m.py::test_total".to_string()];
        assert_eq!(leaks("The total is wrong when I buy two items.", patch, &f2p), Vec::<String>::new());
        assert_eq!(
            leaks("Looks like `total = price / quantity` is the culprit", patch, &f2p),
            ["patch line: total = price / quantity"]
        );
        assert_eq!(leaks("tests/test_m.py::test_total fails", patch, &f2p), ["test id: tests/test_m.py::test_total"]);
        assert_eq!(leaks("pass", patch, &f2p), Vec::<String>::new(), "short lines are not evidence");
    }
}
