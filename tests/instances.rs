//! Task instances end to end: gather and the mirror's branches on a real sdist, issue templates
//! (deterministic, weighted, leak-checked, and the LM template against a local server), and
//! `bugsmith run` killed mid-way and resumed.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bugsmith::script::Origin;
use bugsmith::script::data::{InstanceData, Params};
use bugsmith::script::template::IssueTemplate;
use common::{bugsmith_in, gathered, git, json, manifest, shared_cache, stderr, stdout};
use serde_json::Value;

#[test]
fn gather_writes_instances_and_a_branch_each_that_shows_exactly_the_bug() {
    let (dir, profile, repo_name) = gathered("pypi:tinydb==4.8.2", "2");
    let logs = dir.path().join("logs");
    let instances: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(logs.join("task_insts").join(format!("{repo_name}.json"))).unwrap(),
    )
    .unwrap();
    let lines = std::fs::read_to_string(logs.join("task_insts").join(format!("{repo_name}.jsonl"))).unwrap();
    assert_eq!(lines.lines().count(), instances.len());
    let ids: Vec<&str> = instances.iter().map(|i| i["instance_id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "sorted by id");
    for field in [
        "instance_id",
        "repo",
        "base_commit",
        "patch",
        "FAIL_TO_PASS",
        "PASS_TO_PASS",
        "created_at",
        "image_name",
        "problem_statement",
    ] {
        assert!(instances.iter().all(|i| i.get(field).is_some()), "{field} missing");
    }

    let mirror = logs.join("mirrors").join(format!("{repo_name}.git"));
    let clone = dir.path().join("clone");
    assert!(Command::new("git").args(["clone", "-q"]).arg(&mirror).arg(&clone).status().unwrap().success());
    assert!(!clone.join(".github/workflows").exists());
    for instance in &instances {
        let id = instance["instance_id"].as_str().unwrap();
        assert_eq!(instance["base_commit"], id);
        assert!(id.starts_with(&format!("{repo_name}.")));
        git(&clone, &["checkout", "-q", id]);
        let log = git(&clone, &["log", "--format=%s", "origin/main..HEAD"]);
        assert_eq!(log.lines().collect::<Vec<_>>(), ["Remove F2P Tests", "Bug Patch"], "{id}");
        // The bug commit is main plus the instance's patch, nothing more.
        git(&clone, &["checkout", "-q", "origin/main"]);
        let patch = dir.path().join("instance.diff");
        std::fs::write(&patch, instance["patch"].as_str().unwrap()).unwrap();
        git(&clone, &["apply", patch.to_str().unwrap()]);
        let differs =
            Command::new("git").arg("-C").arg(&clone).args(["diff", "--quiet", &format!("{id}~1")]).status().unwrap();
        assert!(differs.success(), "{id}: the bug commit differs from main + patch");
        git(&clone, &["checkout", "-q", "--", "."]);
        // The F2P test functions are gone at the branch tip; the P2P ones are still there.
        git(&clone, &["checkout", "-q", id]);
        for test in instance["FAIL_TO_PASS"].as_array().unwrap() {
            let (file, name) = test.as_str().unwrap().split_once("::").unwrap();
            let function = name.rsplit("::").next().unwrap().split('[').next().unwrap();
            let text = std::fs::read_to_string(clone.join(file)).unwrap_or_default();
            assert!(!text.contains(&format!("def {function}(")), "{id}: {function} still in {file}");
        }
    }

    // Re-running adds nothing and keeps the branches; a push reaches a remote.
    let again = json(&bugsmith_in(&["gather", profile.to_str().unwrap(), "--json"], &shared_cache(), Some(dir.path())));
    assert_eq!(again["new_branches"], 0);
    assert_eq!(again["instances"].as_u64().unwrap() as usize, instances.len());
    let remote = dir.path().join("remote.git");
    assert!(Command::new("git").args(["init", "-q", "--bare"]).arg(&remote).status().unwrap().success());
    let pushed = bugsmith_in(
        &["gather", profile.to_str().unwrap(), "--push", remote.to_str().unwrap()],
        &shared_cache(),
        Some(dir.path()),
    );
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    let branches = git(&remote, &["branch", "--list"]);
    assert_eq!(branches.lines().count(), instances.len() + 1, "every instance branch and main");
}

/// A synthetic instance for template tests.
fn instance(id: &str) -> InstanceData {
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    InstanceData {
        instance_id: id.to_string(),
        patch: "diff --git a/pkg/m.py b/pkg/m.py\n--- a/pkg/m.py\n+++ b/pkg/m.py\n@@ -1 +1 @@\n-    return total * 2\n+    return total / 2\n".to_string(),
        fail_to_pass: strings(&["tests/test_m.py::test_double", "tests/test_m.py::test_other"]),
        pass_to_pass: strings(&["tests/test_m.py::test_fine"]),
        bug_type: "The operations in an expression are likely incorrect.".to_string(),
        gold_files: strings(&["pkg/m.py"]),
        gold_funcs: strings(&["double"]),
        test_output: "FAILED tests/test_m.py::test_double".to_string(),
        test_sources: [(
            "tests/test_m.py::test_double".to_string(),
            "def test_double():\n    assert double(2) == 4".to_string(),
        )]
        .into(),
        ..InstanceData::default()
    }
}

fn template(name: &str, lm: Option<Arc<bugsmith::lm::LmClient>>) -> IssueTemplate {
    let origin = Origin::File(manifest().join("strategies/issues").join(format!("{name}.rhai")));
    let model = lm.as_ref().map_or(String::new(), |c| c.config().model.clone());
    IssueTemplate::load(Arc::new(bugsmith::script::engine_with_lm(lm)), origin, &model).unwrap()
}

#[test]
fn static_templates_are_deterministic_and_drawn_by_their_weights() {
    let static_template = template("static", None);
    let render = |id: &str, seed: u64| static_template.render(&instance(id), &Params::default(), seed).unwrap().text;
    assert_eq!(render("a.x__1", 24), render("a.x__1", 24));
    let variety: std::collections::BTreeSet<String> = (0..40).map(|i| render(&format!("a.x__{i}"), 24)).collect();
    assert!(variety.len() >= 5, "{variety:#?}");

    // Classify 4000 draws by their text and compare with SWE-smith's weights.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let draws = 4000;
    for i in 0..draws {
        let text = render(&format!("a.x__{i}"), 7);
        let kind = match (
            text.contains("following file(s)"),
            text.contains("relevant to the bug"),
            text.contains("test case is also failing"),
            text.contains("likely incorrect"),
        ) {
            (true, false, _, _) => "files",
            (true, true, _, _) => "files_funcs",
            (false, true, true, _) => "type_files_funcs_tests",
            (false, false, true, _) => "type_files_tests",
            _ if text.contains("following files") => "type_files",
            _ if text.contains("likely incorrect") => "type_basic",
            _ if text.contains("The tests that are failing") => "tests_f2p",
            _ if text.contains("tests in the codebase are breaking") => "tests_basic",
            _ => "basic",
        };
        *counts.entry(kind).or_default() += 1;
    }
    let expected = [
        ("basic", 0.05),
        ("files", 0.10),
        ("files_funcs", 0.15),
        ("tests_basic", 0.10),
        ("tests_f2p", 0.10),
        ("type_basic", 0.05),
        ("type_files", 0.15),
        ("type_files_tests", 0.15),
        ("type_files_funcs_tests", 0.15),
    ];
    for (kind, weight) in expected {
        let share = counts.get(kind).copied().unwrap_or(0) as f64 / draws as f64;
        assert!((share - weight).abs() < 0.025, "{kind}: {share:.3} drawn, weight {weight} ({counts:?})");
    }
    let text = render("a.x__1", 24);
    assert!(!text.contains("{{"), "every placeholder filled: {text}");
}

#[test]
fn the_from_test_template_shows_the_source_of_a_failing_test() {
    let from_test = template("from_test", None);
    let text = from_test.render(&instance("a.x__1"), &Params::default(), 1).unwrap().text;
    assert!(text.contains("I ran the test suite"), "{text}");
    let leaks =
        bugsmith::issue_gen::leaks(&text, "+    return total / 2\n", &["tests/test_m.py::test_double".to_string()]);
    assert!(leaks.is_empty(), "{leaks:?}");
}

#[test]
fn the_lm_template_sends_swe_smiths_prompt_and_returns_the_models_issue() {
    let (url, bodies) = common::lm_server(|_| "Dividing instead of multiplying: `double(2)` gives 1.0".to_string());
    let cache = tempfile::tempdir().unwrap();
    let mut config = bugsmith::lm::LmConfig { base_url: url, model: "m".into(), ..Default::default() };
    config.prices.insert("m".into(), (1.0, 1.0));
    let client = Arc::new(bugsmith::lm::LmClient::new(config, cache.path().to_path_buf()).unwrap());
    let lm = template("lm", Some(client.clone()));
    let rendered = lm.render(&instance("a.x__1"), &Params::default(), 3).unwrap();
    assert_eq!(rendered.text, "Dividing instead of multiplying: `double(2)` gives 1.0");
    assert!((rendered.cost - 0.0021).abs() < 1e-12, "{}", rendered.cost);
    let request: Value = serde_json::from_str(&bodies.lock().unwrap()[0]).unwrap();
    assert_eq!(request["messages"][0]["role"], "system");
    let user = request["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.contains("return total / 2")
            && user.contains("def test_double")
            && user.contains("DO NOT GIVE AWAY THE FIX"),
        "{user}"
    );
    assert!(!user.contains("{{"), "every placeholder filled");
    // The same request again is answered from the cache: no second call, no cost.
    let again = lm.render(&instance("a.x__1"), &Params::default(), 3).unwrap();
    assert_eq!((again.text.as_str(), again.cost), (rendered.text.as_str(), 0.0));
    assert_eq!(bodies.lock().unwrap().len(), 1);
}

#[test]
fn issue_gen_fills_statements_reuses_them_and_flags_leaks() {
    let (dir, profile, repo_name) = gathered(manifest().join("tests/fixtures/repos/inventory").to_str().unwrap(), "1");
    let p = profile.to_str().unwrap();
    let cache = shared_cache();
    let first = json(&bugsmith_in(&["issue-gen", p, "--template", "static", "--json"], &cache, Some(dir.path())));
    assert_eq!(first["written"], first["instances"]);
    let file = dir.path().join("logs/task_insts").join(format!("{repo_name}.json"));
    let statements = |f: &Path| -> Vec<String> {
        let v: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        v.iter().map(|i| i["problem_statement"].as_str().unwrap().to_string()).collect()
    };
    let before = statements(&file);
    assert!(before.iter().all(|s| !s.is_empty()));
    let second = json(&bugsmith_in(&["issue-gen", p, "--template", "static", "--json"], &cache, Some(dir.path())));
    assert_eq!((second["written"].as_u64(), second["reused"].as_u64()), (Some(0), first["instances"].as_u64()));
    assert_eq!(statements(&file), before);
    // Templates that list failing tests are flagged by the leakage check.
    assert!(first["leaking"].as_u64().unwrap() >= 1);
    let leaky = dir.path().join("leaky.rhai");
    std::fs::write(&leaky, "fn render(instance, params, rng) { \"Please fix \" + instance.FAIL_TO_PASS[0] }").unwrap();
    let flagged = json(&bugsmith_in(
        &["issue-gen", p, "--template", leaky.to_str().unwrap(), "--json"],
        &cache,
        Some(dir.path()),
    ));
    assert_eq!(flagged["leaking"], flagged["instances"]);
    // A gather after issue-gen keeps the statements.
    json(&bugsmith_in(&["gather", p, "--json"], &cache, Some(dir.path())));
    assert!(statements(&file).iter().all(|s| s.starts_with("Please fix ")));
    // Editing the template re-renders every statement without `--redo`.
    std::fs::write(&leaky, "fn render(instance, params, rng) { \"Broken: \" + instance.FAIL_TO_PASS[0] }").unwrap();
    let edited = json(&bugsmith_in(
        &["issue-gen", p, "--template", leaky.to_str().unwrap(), "--json"],
        &cache,
        Some(dir.path()),
    ));
    assert_eq!((edited["written"].as_u64(), edited["reused"].as_u64()), (edited["instances"].as_u64(), Some(0)));
    assert!(statements(&file).iter().all(|s| s.starts_with("Broken: ")));
}

#[test]
fn a_killed_run_resumes_without_redoing_finished_work() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("recipe.yaml");
    std::fs::write(
        &recipe,
        format!(
            "version: 1\nname: resume\nsource: {}\nseed: 24\nmax_bugs: 3\nvalidate:\n  jobs: 1\nissues:\n  template: static\n",
            manifest().join("tests/fixtures/repos/inventory").display()
        ),
    )
    .unwrap();
    let run = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bugsmith"));
        command
            .args(["run", recipe.to_str().unwrap()])
            .current_dir(dir.path())
            .env("BUGSMITH_STRATEGIES", manifest().join("strategies"))
            .env("BUGSMITH_CACHE", shared_cache())
            .env("BUGSMITH_NO_PROGRESS", "1");
        command
    };
    let child = run().stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let before = common::kill_after_reports(child, &dir.path().join("logs/run_validation"), 3);
    assert!(before >= 3, "killed after {before} reports");

    let output = run().output().unwrap();
    let text = stdout(&output);
    assert!(output.status.success(), "{text}\n{}", stderr(&output));
    assert!(
        text.contains("== env: finished earlier, skipped") && text.contains("== gen: finished earlier, skipped"),
        "{text}"
    );
    assert!(text.contains(&format!("{before} already done")) || text.contains("already done"), "{text}");
    assert!(text.contains("== issues\n"), "{text}");
    let again = run().output().unwrap();
    let all_skipped = stdout(&again);
    for stage in ["env", "gen", "validate", "gather", "issues"] {
        assert!(all_skipped.contains(&format!("== {stage}: finished earlier, skipped")), "{all_skipped}");
    }
}

#[test]
fn issue_gen_with_a_model_writes_several_statements_at_once() {
    let (dir, profile, repo_name) = gathered(manifest().join("tests/fixtures/repos/inventory").to_str().unwrap(), "1");
    let answer = "Totals come out wrong after a restock.";
    let (url, bodies, most) = common::lm_server_slow(|_| answer.to_string(), std::time::Duration::from_millis(300));
    let p = profile.to_str().unwrap();
    // A model name of its own keeps answers cached by earlier runs out of this one.
    let model =
        format!("fake-{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    let args = [
        "issue-gen",
        p,
        "--template",
        "lm",
        "--lm-base-url",
        &url,
        "--lm-model",
        &model,
        "--lm-concurrency",
        "2",
        "--json",
    ];
    let summary = json(&bugsmith_in(&args, &shared_cache(), Some(dir.path())));
    assert_eq!(summary["written"], summary["instances"], "{summary:#}");
    assert_eq!(bodies.lock().unwrap().len() as u64, summary["instances"].as_u64().unwrap());
    assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 2, "requests overlap, two at a time");
    let file = dir.path().join("logs/task_insts").join(format!("{repo_name}.json"));
    let instances: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert!(instances.iter().all(|i| i["problem_statement"] == answer));
    // Another model writes every statement again; the same one reuses them.
    let again = json(&bugsmith_in(&args, &shared_cache(), Some(dir.path())));
    assert_eq!((again["written"].as_u64(), &again["reused"]), (Some(0), &summary["instances"]), "{again:#}");
    let other = format!("{model}-b");
    let mut switched = args;
    switched[7] = &other;
    let redone = json(&bugsmith_in(&switched, &shared_cache(), Some(dir.path())));
    assert_eq!(redone["written"], summary["instances"], "{redone:#}");
}

#[test]
fn try_renders_an_issue_template_for_one_validated_instance() {
    let (dir, profile, repo_name) =
        common::gathered(manifest().join("tests/fixtures/repos/inventory").to_str().unwrap(), "1");
    let instances: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("logs/task_insts").join(format!("{repo_name}.json"))).unwrap(),
    )
    .unwrap();
    let id = instances[0]["instance_id"].as_str().unwrap();
    let out = dir.path().join("logs");
    let args =
        ["try", "from_test", "--instance", id, "--out", out.to_str().unwrap(), "--profile", profile.to_str().unwrap()];
    let output = common::bugsmith_in(&args, &common::shared_cache(), Some(dir.path()));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    let test = instances[0]["FAIL_TO_PASS"][0].as_str().unwrap();
    let name = test.rsplit("::").next().unwrap();
    assert!(text.contains(name), "the statement names the failing test {name}: {text}");
    let missing = common::bugsmith_in(
        &["try", "static", "--instance", "nope", "--out", out.to_str().unwrap()],
        &common::shared_cache(),
        Some(dir.path()),
    );
    assert!(!missing.status.success());
}

/// The statements every built-in issue template that needs no model writes for one fixture
/// instance, against snapshots (the `from_pr` one from a mirrored change's metadata).
#[test]
fn the_builtin_issue_templates_match_their_snapshots() {
    for (name, id) in [("static", "a.x__1"), ("from_test", "a.x__1"), ("from_pr", "a.pr_7")] {
        let data = InstanceData {
            original_title: "Totals ignore the discount".into(),
            original_issue: "The total is wrong when a discount applies.".into(),
            ..instance(id)
        };
        let text = template(name, None).render(&data, &Params::default(), 24).unwrap().text;
        insta::assert_snapshot!(format!("issue_template__{name}"), text);
    }
}
