//! Validation at the cost of the covering tests (local backend): per-test coverage from the
//! baseline, candidates that run only the tests executing their changes (or none), module-level
//! changes that run every test, the verify sample catching what coverage cannot see (code run
//! in a subprocess, a test reading source text) and falling back to whole suites, unittest
//! falling back, resume, and agreement with whole-suite runs on a real sdist.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{bugsmith, bugsmith_in, json, manifest, patch_of, shared_cache, stderr};
use serde_json::Value;

struct Fixture {
    dir: tempfile::TempDir,
    profile: PathBuf,
    repo_name: String,
    candidates: PathBuf,
}

impl Fixture {
    fn new(source: &Path) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("profile.yaml");
        let init =
            bugsmith(&["profile", "init", source.to_str().unwrap(), "-o", profile.to_str().unwrap()], &shared_cache());
        assert!(init.status.success(), "{}", stderr(&init));
        let text = std::fs::read_to_string(&profile).unwrap();
        let repo_name = text
            .lines()
            .find_map(|l| l.strip_prefix("repo_name: "))
            .map(|n| n.trim().trim_matches('\'').to_string())
            .unwrap();
        let candidates = dir.path().join("candidates");
        std::fs::create_dir_all(&candidates).unwrap();
        Fixture { dir, profile, repo_name, candidates }
    }

    fn checkout(&self) -> PathBuf {
        shared_cache().join("checkouts").join(&self.repo_name)
    }

    /// A candidate replacing `from` with `to` in `file`.
    fn candidate(&self, name: &str, file: &str, from: &str, to: &str) {
        let patch = patch_of(&self.checkout(), file, |t| {
            assert!(t.contains(from), "{from}");
            t.replacen(from, to, 1)
        });
        std::fs::write(self.candidates.join(format!("bug__func_pm_{name}__aaaaaaaa.diff")), patch).unwrap();
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn validate(&self, out: &str, extra: &[&str]) -> Value {
        let out = self.out(out);
        let mut args = vec![
            "validate",
            self.profile.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--candidates",
            self.candidates.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        json(&bugsmith_in(&args, &shared_cache(), Some(self.dir.path())))
    }

    /// Reports by candidate name (`total`, …).
    /// A JSON file of the baseline folder `<repo_name>.ref/` under output `out`.
    fn ref_file(&self, out: &str, name: &str) -> Value {
        let path =
            self.out(out).join("run_validation").join(&self.repo_name).join(format!("{}.ref/{name}", self.repo_name));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    fn reports(&self, out: &str) -> BTreeMap<String, Value> {
        common::reports_in(&self.out(out).join("run_validation").join(&self.repo_name))
            .into_iter()
            .map(|(id, report)| {
                let name = id.split(".func_pm_").nth(1).unwrap().split("__").next().unwrap().to_string();
                (name, report)
            })
            .collect()
    }
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

fn selection_fixture() -> Fixture {
    let fixture = Fixture::new(&manifest().join("tests/fixtures/repos/selection"));
    fixture.candidate("total", "shop/prices.py", "* quantity", "+ quantity");
    fixture.candidate("raise", "shop/prices.py", "\"negative quantity\"", "\"negative\"");
    fixture.candidate("unused", "shop/prices.py", "value + 1", "value + 2");
    fixture.candidate("module", "shop/prices.py", "RATE = 2", "RATE = 3");
    fixture
}

#[test]
fn candidates_run_only_the_tests_that_execute_their_changes() {
    let fixture = selection_fixture();
    let summary = fixture.validate("out", &["--verify", "0"]);
    assert!(summary["coverage"].as_str().unwrap().contains("tests recorded"), "{summary:#}");
    let reports = fixture.reports("out");

    // Executed by one test only (the change is on a continuation line, which coverage does not
    // list: it is looked up through its statement): only that test runs, and it is the F2P.
    let total = &reports["total"];
    assert_eq!(total["selection"], "covering", "{total:#}");
    assert_eq!(total["tests_run"], 1);
    assert_eq!(total["verdict"], "valid");
    assert_eq!(strings(&total["FAIL_TO_PASS"]), ["tests/test_total.py::test_total"]);
    assert_eq!(total["p2p_from"], "baseline");
    assert!(strings(&total["PASS_TO_PASS"]).contains(&"tests/test_prices.py::test_rated[2]".to_string()));

    // No test raises: the raise statement never ran.
    assert_eq!(
        (&reports["raise"]["selection"], &reports["raise"]["verdict"]),
        (&"uncovered".into(), &"no_test_broken".into())
    );

    // No test executes it: decided without a run.
    let unused = &reports["unused"];
    assert_eq!(
        (&unused["selection"], &unused["tests_run"], &unused["verdict"]),
        (&"uncovered".into(), &0.into(), &"no_test_broken".into())
    );

    // Module level: every test runs; the parametrized ones break.
    let module = &reports["module"];
    assert_eq!(module["selection"], "all");
    assert!(module["tests_run"].as_u64().unwrap() >= 6, "{module:#}");
    assert_eq!(
        strings(&module["FAIL_TO_PASS"]),
        ["tests/test_prices.py::test_rated[1]", "tests/test_prices.py::test_rated[2]"]
    );

    // The same candidates on whole suites: the same verdicts and F2P (and, here, P2P).
    let all = fixture.validate("out-all", &["--select", "all"]);
    assert_eq!(all["selection"]["all"], 4, "{all:#}");
    for (name, report) in fixture.reports("out-all") {
        let covering = &reports[&name];
        assert_eq!(report["verdict"], covering["verdict"], "{name}");
        assert_eq!(report["FAIL_TO_PASS"], covering["FAIL_TO_PASS"], "{name}");
        assert_eq!(report["PASS_TO_PASS"], covering["PASS_TO_PASS"], "{name}");
    }

    // Every test starts from the same random state in the seeded runs (the first baseline run,
    // the candidates'), and not in the second baseline run: a test that depends on the draw
    // shows as flaky and is in no F2P or P2P.
    let stored = fixture.ref_file("out", "baseline.json");
    let drawn = "tests/test_random_state.py::test_every_test_starts_from_the_same_random_state";
    let baseline = &stored["baseline"];
    assert!(strings(&baseline["flaky"]).contains(&drawn.to_string()), "{baseline:#}");
    assert!(reports.values().all(|r| !r.to_string().contains(drawn)));

    // --exact: P2P from a second, full run.
    let exact = fixture.validate("out-exact", &["--exact", "--verify", "0"]);
    assert_eq!(exact["verified"], 0);
    let total = &fixture.reports("out-exact")["total"];
    assert_eq!((&total["p2p_from"], &total["selection"]), (&"run".into(), &"covering".into()));

    // Resume: nothing runs again.
    let again = fixture.validate("out", &["--verify", "0"]);
    assert_eq!((again["ran"].as_u64(), again["skipped_done"].as_u64()), (Some(0), Some(4)), "{again:#}");
}

#[test]
fn the_verify_sample_catches_what_coverage_cannot_see_and_falls_back_to_whole_suites() {
    let fixture = selection_fixture();
    // Reached only through a subprocess: coverage sees no test execute it.
    fixture.candidate("shout", "shop/prices.py", "text.upper()", "text.lower()");
    let summary = fixture.validate("out", &["--verify", "100"]);
    // Every candidate the selection decides; the module-level one runs the whole suite anyway.
    assert_eq!(summary["verified"], 4, "{summary:#}");
    let fallback = summary["fallback"].as_str().unwrap();
    assert!(fallback.contains("func_pm_shout") && fallback.contains("test_shout_in_a_subprocess"), "{fallback}");
    let reports = fixture.reports("out");
    assert_eq!(reports["shout"]["verdict"], "valid", "the full suite's verdict is kept");
    assert_eq!(strings(&reports["shout"]["FAIL_TO_PASS"]), ["tests/test_outside.py::test_shout_in_a_subprocess"]);
    let check = fixture.ref_file("out", "coverage_check.json");
    assert_eq!(check["fallback"].as_str(), Some(fallback));

    // Kept on resume: a new candidate (a test reads this function's source) runs the whole suite.
    fixture.candidate("greeting", "shop/prices.py", "\"hello \" + name", "\"hi \" + name");
    let again = fixture.validate("out", &["--verify", "0"]);
    assert_eq!(again["fallback"].as_str(), Some(fallback));
    let greeting = &fixture.reports("out")["greeting"];
    assert_eq!(greeting["selection"], "all");
    assert_eq!(strings(&greeting["FAIL_TO_PASS"]), ["tests/test_outside.py::test_greeting_source_is_documented"]);
}

#[test]
fn a_class_change_runs_the_classs_users_and_the_whole_suite_once_a_module_no_longer_imports() {
    let fixture = Fixture::new(&manifest().join("tests/fixtures/repos/selection"));
    // A method removed from a class with bases: the tests that used the class.
    let ring = "    def ring(self):\n        self.count += 1\n        return self.count\n\n";
    fixture.candidate("ring", "shop/prices.py", ring, "");
    // Its base removed: the tests that used the class run first, their module no longer
    // imports (`CURRENCY = Till.currency`), and the whole suite runs.
    fixture.candidate("base", "shop/prices.py", "class Till(Base):", "class Till:");
    fixture.validate("out", &["--verify", "0"]);
    let reports = fixture.reports("out");
    let ring = &reports["ring"];
    assert_eq!((&ring["selection"], &ring["verdict"]), (&"covering".into(), &"valid".into()), "{ring:#}");
    assert_eq!(strings(&ring["FAIL_TO_PASS"]), ["tests/test_till.py::test_ring"]);
    let base = &reports["base"];
    assert_eq!(base["selection"], "all", "{base:#}");
    let f2p = strings(&base["FAIL_TO_PASS"]);
    for test in ["tests/test_till.py::test_ring", "tests/test_total.py::test_total"] {
        assert!(f2p.contains(&test.to_string()), "{test} in {f2p:?}");
    }
    // Whole suites agree.
    fixture.validate("out-all", &["--select", "all"]);
    for (name, report) in fixture.reports("out-all") {
        assert_eq!(report["FAIL_TO_PASS"], reports[&name]["FAIL_TO_PASS"], "{name}");
    }
}

#[test]
fn a_test_reading_source_text_is_caught_by_the_verify_sample_too() {
    let fixture = Fixture::new(&manifest().join("tests/fixtures/repos/selection"));
    fixture.candidate("greeting", "shop/prices.py", "\"hello \" + name", "\"hi \" + name");
    let summary = fixture.validate("out", &["--verify", "100"]);
    assert!(summary["fallback"].as_str().unwrap().contains("test_greeting_source_is_documented"), "{summary:#}");
}

#[test]
fn unittest_suites_fall_back_to_whole_suites_and_say_so() {
    let fixture = Fixture::new(&manifest().join("tests/fixtures/repos/selection_unittest"));
    let profile = std::fs::read_to_string(&fixture.profile).unwrap();
    assert!(profile.contains("log_parser: unittest"), "{profile}");
    fixture.candidate("add", "calc/ops.py", "a + b", "a - b");
    let summary = fixture.validate("out", &[]);
    assert!(summary["coverage"].as_str().unwrap().contains("pytest"), "{summary:#}");
    let report = &fixture.reports("out")["add"];
    assert_eq!((&report["selection"], &report["verdict"]), (&"all".into(), &"valid".into()));
}

#[test]
fn a_killed_covering_run_resumes_without_running_finished_candidates_again() {
    let fixture = selection_fixture();
    for i in 0..12 {
        fixture.candidate(&format!("variant{i}"), "shop/prices.py", "* quantity", &format!("* quantity + {i}"));
    }
    let out = fixture.out("out");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bugsmith"))
        .args(["validate", fixture.profile.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .args(["--candidates", fixture.candidates.to_str().unwrap(), "-j", "1", "--verify", "0"])
        .env("BUGSMITH_CACHE", shared_cache())
        .current_dir(fixture.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let reports_dir = out.join("run_validation").join(&fixture.repo_name);
    let finished = || {
        std::fs::read_dir(&reports_dir)
            .map(|d| d.flatten().filter(|e| e.path().join("report.json").is_file()).count())
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while finished() < 3 && std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done_before = finished();
    assert!(done_before >= 3, "reports before the kill: {done_before}");
    let resumed = fixture.validate("out", &["--verify", "0"]);
    assert_eq!(resumed["skipped_done"].as_u64().unwrap() as usize, done_before, "{resumed:#}");
    assert_eq!(resumed["ran"].as_u64().unwrap() as usize + done_before, 16, "{resumed:#}");
}

#[test]
fn gen_covered_only_skips_entities_no_test_executes() {
    let fixture = Fixture::new(&manifest().join("tests/fixtures/repos/selection"));
    let out = fixture.out("out");
    let generate = |extra: &[&str]| {
        let mut args = vec!["gen", fixture.profile.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        bugsmith_in(&args, &shared_cache(), Some(fixture.dir.path()))
    };
    let refused = generate(&["--covered-only"]);
    assert!(!refused.status.success() && stderr(&refused).contains("run `bugsmith validate`"), "{}", stderr(&refused));
    // One validation records the coverage (its candidates do not matter here).
    fixture.candidate("total", "shop/prices.py", "* quantity", "+ quantity");
    fixture.validate("out", &["--verify", "0"]);
    let all = json(&generate(&["--clean"]));
    let covered = json(&generate(&["--covered-only", "--clean"]));
    assert_eq!(all["skipped_entities"], Value::Null);
    // `unused`, `shout` and `greeting` no test executes.
    assert_eq!(covered["skipped_entities"], 3, "{covered:#}");
    assert!(covered["entities"].as_u64() < all["entities"].as_u64());
}

/// The same candidates of a real sdist, covering against whole suites: the same verdicts and
/// F2P on every one (with Docker too, when a daemon runs).
#[test]
fn on_a_real_sdist_covering_and_all_agree_on_every_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let cache = shared_cache();
    let profile = dir.path().join("profile.yaml");
    let p = profile.to_str().unwrap();
    assert!(bugsmith(&["profile", "init", "pypi:tinydb==4.8.2", "-o", p], &cache).status.success());
    let gen_out = dir.path().join("gen");
    let summary = json(&bugsmith(&["gen", p, "--out", gen_out.to_str().unwrap(), "--max-bugs", "2", "--json"], &cache));
    let repo_name = summary["repo_name"].as_str().unwrap().to_string();
    let candidates = gen_out.join("bug_gen").join(&repo_name);
    let run = |backend: &str, mode: &str| {
        let out = dir.path().join(format!("{backend}-{mode}"));
        let args = [
            "validate",
            p,
            "--backend",
            backend,
            "--select",
            mode,
            "--verify",
            "0",
            "--out",
            out.to_str().unwrap(),
            "--candidates",
            candidates.to_str().unwrap(),
            "--json",
        ];
        let summary = json(&bugsmith_in(&args, &cache, Some(dir.path())));
        let reports = common::reports_in(&out.join("run_validation").join(&repo_name));
        (summary, reports)
    };
    let mut backends = vec!["local"];
    if common::docker_ready() {
        backends.push("docker");
    }
    for backend in backends {
        let (all_summary, all) = run(backend, "all");
        let (summary, covering) = run(backend, "covering");
        assert!(summary["coverage"].as_str().unwrap().contains("tests recorded"), "{backend}: {summary:#}");
        assert!(summary["tests_run"].as_u64() < all_summary["tests_run"].as_u64(), "{backend}: fewer tests run");
        assert!(all.len() > 10, "{}", all.len());
        for (id, report) in &all {
            let c = &covering[id];
            assert_eq!(c["verdict"], report["verdict"], "{backend} {id}: {c:#}");
            assert_eq!(c["FAIL_TO_PASS"], report["FAIL_TO_PASS"], "{backend} {id}");
        }
    }
}
