//! Gather: valid validation reports → SWE-bench task instances (`task_insts/<repo_name>.json`
//! and `.jsonl`) and a mirror repository with one branch per instance: the bug commit, then a
//! commit that removes the F2P test functions (SWE-smith removes whole files; removing only the
//! failing functions keeps the rest of the suite usable as PASS_TO_PASS context).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use crate::ast::SourceFile;
use crate::backend::docker::DockerBackend;
use crate::backend::local::LocalBackend;
use crate::console;
use crate::context::{Context, Error, Outcome};
use crate::git::Mirror;
use crate::grading::test_location;
use crate::patch;
use crate::profile::Profile;
use crate::records::Report;
pub use crate::records::{TaskInstance, read_instances, write_instances};
use crate::settings::GatherSettings;
use crate::source::Checkout;

/// The difficulty fields of an instance: its patch's size and the functions it changes.
struct Difficulty {
    lines_changed: usize,
    hunks: usize,
    functions_changed: usize,
    files_changed: usize,
}

fn difficulty(mirror: &Mirror, patch_text: &str) -> Difficulty {
    let changes = patch::changes_of(patch_text);
    let mut functions = BTreeSet::new();
    for change in &changes {
        let Some(file) = mirror.main_file(&change.path).and_then(|t| SourceFile::parse(&change.path, t).ok()) else {
            continue;
        };
        for line in &change.old_lines {
            let innermost = file
                .entities()
                .iter()
                .filter(|e| e.kind == crate::ast::EntityKind::Function)
                .filter(|e| e.decorated_line_start.min(e.line_start) <= *line && *line <= e.line_end)
                .min_by_key(|e| e.line_end - e.line_start);
            if let Some(entity) = innermost {
                functions.insert((change.path.clone(), entity.qualified_name.clone()));
            }
        }
    }
    Difficulty {
        lines_changed: changes.iter().map(|c| c.added + c.removed).sum(),
        hunks: changes.iter().map(|c| c.hunks).sum(),
        functions_changed: functions.len(),
        files_changed: changes.len(),
    }
}

/// What a gather did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GatherSummary {
    /// Reports read.
    pub reports: usize,
    /// Valid instances written.
    pub instances: usize,
    /// Branches created now (existing ones are left as they are).
    pub new_branches: usize,
    /// The instance file.
    pub output: String,
    /// The mirror repository.
    pub mirror: String,
    /// Instances whose branch could not be made (id: reason).
    pub problems: Vec<String>,
    /// Instances with test ids that SWE-smith's pytest log regex cannot read (they hold spaces).
    pub unreadable_ids: Vec<String>,
    /// What was refreshed for agents: the Docker image, the local mirror clone.
    pub agent_environments: Vec<String>,
}

/// SWE-smith's validity rule: not timed out, ≥ 1 F2P and ≥ 1 P2P (PR mirrors may have 0 P2P).
pub fn is_valid(report: &Report, repo_name: &str) -> bool {
    !report.timed_out
        && report.patch_applied
        && report.error.is_none()
        && !report.grade.fail_to_pass.is_empty()
        && (!report.grade.pass_to_pass.is_empty()
            || crate::ids::InstanceId::parse(repo_name, &report.instance_id).is_some_and(|id| id.local.is_mirrored()))
}

/// Seconds since the epoch as RFC 3339 UTC.
pub fn rfc3339(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// The base class names in a class signature (`class C(A, mod.B):` → `A`, `B`).
fn base_names(signature: &str) -> Vec<String> {
    let Some((_, rest)) = signature.split_once('(') else { return Vec::new() };
    let inside = rest.rsplit_once(')').map_or(rest, |(b, _)| b);
    inside
        .split(',')
        .map(|b| b.trim().rsplit('.').next().unwrap_or("").to_string())
        .filter(|b| !b.is_empty() && !b.contains('='))
        .collect()
}

/// New text (or `None`: delete) for each test file, with the F2P test functions removed. A test
/// file left without any test function goes entirely; ids whose function is not found (or in
/// files that are not test files or do not parse) are returned as they were given. A test a
/// class inherits counts as removed when the base class's method is removed.
fn hide_tests(mirror: &Mirror, fail_to_pass: &[String]) -> (Vec<(String, Option<String>)>, Vec<String>) {
    let mut unmatched = Vec::new();
    let mut by_file: BTreeMap<String, Vec<(String, &String)>> = BTreeMap::new();
    for id in fail_to_pass {
        match test_location(id) {
            Some((file, name)) if crate::ast::is_test_path(&file) => by_file.entry(file).or_default().push((name, id)),
            _ => unmatched.push(id.clone()),
        }
    }
    let mut changes = Vec::new();
    for (file, names) in by_file {
        let parsed = mirror.main_file(&file).and_then(|text| SourceFile::parse(&file, text).ok());
        let Some(parsed) = parsed else {
            unmatched.extend(names.iter().map(|(_, id)| (*id).clone()));
            continue;
        };
        let entities = parsed.entities();
        let removed: BTreeSet<&str> = entities
            .iter()
            .filter(|e| names.iter().any(|(n, _)| n == &e.qualified_name))
            .map(|e| e.qualified_name.as_str())
            .collect();
        let inherited = |name: &str| {
            let Some((class, method)) = name.rsplit_once('.') else { return false };
            let Some(entity) = entities.iter().find(|e| e.qualified_name == class) else { return false };
            base_names(&entity.signature).iter().any(|base| removed.contains(format!("{base}.{method}").as_str()))
        };
        unmatched.extend(
            names.iter().filter(|(n, _)| !removed.contains(n.as_str()) && !inherited(n)).map(|(_, id)| (*id).clone()),
        );
        let doomed: Vec<u32> =
            entities.iter().filter(|e| removed.contains(e.qualified_name.as_str())).map(|e| e.node).collect();
        if doomed.is_empty() {
            continue;
        }
        let text = parsed.text();
        let edits = patch::remove_statements(&parsed, &doomed);
        let Ok(new_text) = patch::apply(text, &edits, (0, text.len() as u32)) else {
            unmatched.extend(names.iter().map(|(_, id)| (*id).clone()));
            continue;
        };
        let tests_left = SourceFile::parse(&file, new_text.clone())
            .map(|f| f.entities().iter().any(|e| e.name.starts_with("test")))
            .unwrap_or(false);
        changes.push((file, tests_left.then_some(new_text)));
    }
    (changes, unmatched)
}

/// Gathers the valid reports under `run_dir` into `task_insts/` under `out` and branches in the
/// mirror at `mirror_path`. Problem statements already in the instance file are kept.
pub fn gather(
    profile: &Profile,
    checkout: &Checkout,
    run_dir: &Path,
    out: &Path,
    mirror_path: &Path,
) -> Result<GatherSummary, Error> {
    let mirror = Mirror::open_or_create(mirror_path, &checkout.root).map_err(|e| e.to_string())?;
    let task_dir = out.join("task_insts");
    std::fs::create_dir_all(&task_dir).map_err(|e| format!("{}: {e}", task_dir.display()))?;
    let json_path = task_dir.join(format!("{}.json", profile.repo_name));
    let previous: BTreeMap<String, TaskInstance> = std::fs::read_to_string(&json_path)
        .ok()
        .and_then(|t| serde_json::from_str::<Vec<TaskInstance>>(&t).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i.instance_id.clone(), i))
        .collect();
    let mut summary = GatherSummary {
        output: json_path.display().to_string(),
        mirror: mirror_path.display().to_string(),
        ..GatherSummary::default()
    };
    let mut folders: Vec<_> = std::fs::read_dir(run_dir)
        .map_err(|e| format!("{}: {e}: run `bugsmith validate` first", run_dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| !p.to_string_lossy().ends_with(".ref"))
        .collect();
    folders.sort();
    let mut instances = Vec::new();
    for folder in folders {
        let report_path = folder.join("report.json");
        let Some(report) =
            std::fs::read_to_string(&report_path).ok().and_then(|t| serde_json::from_str::<Report>(&t).ok())
        else {
            continue;
        };
        summary.reports += 1;
        if !is_valid(&report, &profile.repo_name) {
            continue;
        }
        let Ok(patch_text) = std::fs::read_to_string(folder.join("patch.diff")) else { continue };
        let id = report.instance_id.clone();
        if !mirror.has_branch(&id) {
            let (hide, unmatched) = hide_tests(&mirror, &report.grade.fail_to_pass);
            if !unmatched.is_empty() {
                summary.problems.push(format!("{id}: F2P tests left visible (not found): {}", unmatched.join(", ")));
            }
            match mirror.add_instance(&id, &patch_text, &hide) {
                Ok(()) => summary.new_branches += 1,
                Err(e) => {
                    summary.problems.push(format!("{id}: {e}"));
                    continue;
                }
            }
        }
        let validated = std::fs::metadata(&report_path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let problem_statement = previous.get(&id).map(|p| p.problem_statement.clone()).unwrap_or_default();
        let size = difficulty(&mirror, &patch_text);
        if report.grade.fail_to_pass.iter().chain(&report.grade.pass_to_pass).any(|t| t.contains(char::is_whitespace)) {
            summary.unreadable_ids.push(id.clone());
        }
        let local_id = id.strip_prefix(&format!("{}.", profile.repo_name)).unwrap_or(&id);
        instances.push(TaskInstance {
            strategy: crate::ids::LocalId::parse(local_id).strategy().to_string(),
            lines_changed: size.lines_changed,
            hunks: size.hunks,
            functions_changed: size.functions_changed,
            files_changed: size.files_changed,
            num_f2p: report.grade.fail_to_pass.len(),
            repo: profile.mirror_name(),
            base_commit: id.clone(),
            patch: patch_text,
            fail_to_pass: report.grade.fail_to_pass.clone(),
            pass_to_pass: report.grade.pass_to_pass.clone(),
            created_at: previous.get(&id).map_or_else(|| rfc3339(validated), |p| p.created_at.clone()),
            image_name: profile.image_name.clone(),
            problem_statement,
            instance_id: id,
        });
    }
    instances.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    summary.instances = instances.len();
    write_instances(&json_path, &instances)?;
    Ok(summary)
}

/// `bugsmith gather`: the valid reports of the profile's repository become instances and
/// mirror branches.
pub fn command(ctx: &Context, profile_path: &Path, settings: &GatherSettings, out: &Path, json: bool) -> Outcome {
    let profile = ctx.profile(profile_path)?;
    let checkout = ctx.checkout(&profile)?;
    let run_dir = out.join("run_validation").join(&profile.repo_name);
    let mirror_path = out.join("mirrors").join(format!("{}.git", profile.repo_name));
    let mut summary = gather(&profile, &checkout, &run_dir, out, &mirror_path)?;
    summary.agent_environments = agent_environments(ctx, &profile, &mirror_path);
    if let Some(remote) = &settings.push {
        let mirror = Mirror::open_or_create(&mirror_path, &checkout.root)?;
        let branches = mirror.branches()?;
        let token = std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty());
        mirror.push(remote, &branches, token.as_deref())?;
        console::status(json, &format!("pushed {} branches to {remote}", branches.len()));
    }
    crate::context::print_summary(json, &summary, print_gather_summary);
    Ok(crate::EXIT_OK)
}

fn print_gather_summary(summary: &GatherSummary) {
    println!(
        "{} instances from {} reports ({} new branches) -> {}\nmirror: {}",
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

/// Refreshes what agents run in after a gather: the Docker image `image_name` when the
/// repository has a validation image, and a mirror clone beside the local virtualenv when it
/// has one. Returns what was done (failures included: the instances are written either way).
fn agent_environments(ctx: &Context, profile: &Profile, mirror_path: &Path) -> Vec<String> {
    let mut done = Vec::new();
    let Ok(mirror) = Mirror::open(mirror_path) else { return done };
    let branches = mirror.branch_heads().unwrap_or_default();
    let local = LocalBackend::new(&ctx.cache_dir());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_as_utc_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_303_400), "2026-11-21T23:23:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn node_ids_give_file_and_dotted_function() {
        assert_eq!(test_location("tests/t.py::TestA::test_b[x y]"), Some(("tests/t.py".into(), "TestA.test_b".into())));
        assert_eq!(test_location("t.py::test_c"), Some(("t.py".into(), "test_c".into())));
        assert_eq!(test_location("test_c (tests.m.C.test_c)"), Some(("tests/m.py".into(), "C.test_c".into())));
        assert_eq!(test_location("test_c (tests.m.C)"), Some(("tests/m.py".into(), "C.test_c".into())));
        assert_eq!(test_location("test_c (__main__.C)"), None);
        assert_eq!(test_location("test_c"), None);
    }

    #[test]
    fn class_signatures_give_their_base_names() {
        assert_eq!(base_names("class C(A, mod.B, metaclass=M):"), ["A", "B"]);
        assert!(base_names("class C:").is_empty());
    }
}
