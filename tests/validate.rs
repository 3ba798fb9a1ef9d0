//! Validation end to end on real sdists and on the bundled example, with the local backend and
//! with Docker: profile init → env build → gen → validate, plus the faults a harness must survive.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use common::{bugsmith, bugsmith_in, docker_ready, json, manifest, patch_of, shared_cache, stderr};
use serde_json::Value;

struct Prepared {
    dir: tempfile::TempDir,
    profile: PathBuf,
    repo_name: String,
    candidates: PathBuf,
}

impl Prepared {
    fn checkout(&self) -> PathBuf {
        shared_cache().join("checkouts").join(&self.repo_name)
    }

    fn add_candidate(&self, id: &str, patch: &str) {
        std::fs::write(self.candidates.join(format!("bug__{id}.diff")), patch).unwrap();
    }

    fn validate(&self, backend: &str, extra: &[&str]) -> Value {
        let out = self.dir.path().join(format!("out-{backend}"));
        let mut args = vec![
            "validate",
            self.profile.to_str().unwrap(),
            "--backend",
            backend,
            "--out",
            out.to_str().unwrap(),
            "--candidates",
            self.candidates.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        json(&bugsmith_in(&args, &shared_cache(), Some(self.dir.path())))
    }

    fn reports(&self, backend: &str) -> BTreeMap<String, Value> {
        let dir = self.dir.path().join(format!("out-{backend}/run_validation")).join(&self.repo_name);
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("report.json").exists())
            .map(|p| {
                let report: Value =
                    serde_json::from_str(&std::fs::read_to_string(p.join("report.json")).unwrap()).unwrap();
                (report["instance_id"].as_str().unwrap().to_string(), report)
            })
            .collect()
    }
}

/// profile init and gen (at most `max_bugs` per strategy) for a source.
fn prepare(source: &str, max_bugs: &str) -> Prepared {
    let cache = shared_cache();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile.yaml");
    let init = bugsmith(&["profile", "init", source, "-o", profile.to_str().unwrap()], &cache);
    assert!(init.status.success(), "{}", stderr(&init));
    let out = dir.path().join("gen");
    let summary = json(&bugsmith(
        &["gen", profile.to_str().unwrap(), "--out", out.to_str().unwrap(), "--max-bugs", max_bugs, "--json"],
        &cache,
    ));
    let repo_name = summary["repo_name"].as_str().unwrap().to_string();
    let candidates = out.join("bug_gen").join(&repo_name);
    Prepared { dir, profile, repo_name, candidates }
}

fn verdict_counts(summary: &Value) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for per_strategy in summary["strategies"].as_object().unwrap().values() {
        for (verdict, n) in per_strategy.as_object().unwrap() {
            *counts.entry(verdict.clone()).or_default() += n.as_u64().unwrap();
        }
    }
    counts
}

/// The shared assertions: known-good mutations break tests, a no-op breaks none, every valid
/// report has F2P and P2P, and (when Docker runs) both backends agree test for test.
fn validate_sdist(source: &str, min_valid: u64) {
    let prepared = prepare(source, "2");
    let first_file = std::fs::read_dir(&prepared.candidates).unwrap().next().unwrap().unwrap().file_name();
    let file = first_file.to_string_lossy().replace("__", "/");
    prepared.add_candidate(
        "noop__aaaaaaaa",
        &patch_of(&prepared.checkout(), &file, |t| format!("# a comment, nothing else\n{t}")),
    );

    let local = prepared.validate("local", &[]);
    let counts = verdict_counts(&local);
    assert!(counts.get("valid").copied().unwrap_or(0) >= min_valid, "{counts:?}");
    assert_eq!(counts.get("error"), None, "{counts:?}");
    assert!(local["baseline_passing"].as_u64().unwrap() > 10);
    let reports = prepared.reports("local");
    let noop = &reports[&format!("{}.noop__aaaaaaaa", prepared.repo_name)];
    assert_eq!(noop["verdict"], "no_test_broken");
    assert_eq!(noop["FAIL_TO_PASS"].as_array().unwrap().len(), 0);
    assert!(noop["PASS_TO_PASS"].as_array().unwrap().len() > 10);
    for report in reports.values().filter(|r| r["verdict"] == "valid") {
        assert!(!report["FAIL_TO_PASS"].as_array().unwrap().is_empty());
        assert!(!report["PASS_TO_PASS"].as_array().unwrap().is_empty());
        assert_eq!(report["results_from"], "junit");
        assert!(report["FAIL_TO_PASS"][0].as_str().unwrap().contains(".py::"), "pytest node ids");
    }

    if !docker_ready() {
        return;
    }
    let docker = prepared.validate("docker", &[]);
    assert_eq!(verdict_counts(&docker), counts, "docker and local disagree");
    for (id, report) in prepared.reports("docker") {
        assert_eq!(report["FAIL_TO_PASS"], reports[&id]["FAIL_TO_PASS"], "{id}");
        assert_eq!(report["PASS_TO_PASS"], reports[&id]["PASS_TO_PASS"], "{id}");
    }
}

#[test]
fn the_parse_sdist_validates_locally_and_in_docker() {
    validate_sdist("pypi:parse==1.20.2", 10);
}

#[test]
fn the_tinydb_sdist_validates_locally_and_in_docker() {
    validate_sdist("pypi:tinydb==4.8.2", 10);
}

/// The bundled example with hand-made faulty candidates.
fn prepared_with_faults() -> Prepared {
    let prepared = prepare(manifest().join("tests/fixtures/repos/inventory").to_str().unwrap(), "1");
    let checkout = prepared.checkout();
    let hang = patch_of(&checkout, "inventory/pricing.py", |t| {
        t.replacen("    cents = amount * 100\n", "    while True:\n        pass\n    cents = amount * 100\n", 1)
    });
    let escape = patch_of(&checkout, "inventory/pricing.py", |t| {
        t.replacen(
            "    total = quantity * unit_price\n",
            "    import os\n    junit = os.environ[\"PYTEST_ADDOPTS\"].split(\"--junitxml=\")[1].split()[0]\n    open(os.path.join(os.path.dirname(junit), \"planted\"), \"w\").write(\"x\")\n    total = quantity * unit_price\n",
            1,
        )
    });
    prepared.add_candidate("fault_hang__aaaaaaaa", &hang);
    prepared.add_candidate("fault_escape__bbbbbbbb", &escape);
    prepared.add_candidate("fault_noapply__cccccccc", &hang.replace("cents = amount * 100", "cents = amount * 1000"));
    prepared
}

fn check_faults(prepared: &Prepared, backend: &str) {
    let summary = prepared.validate(backend, &["--timeout", "5"]);
    let reports = prepared.reports(backend);
    let report = |id: &str| &reports[&format!("{}.{id}", prepared.repo_name)];
    assert_eq!(report("fault_hang__aaaaaaaa")["verdict"], "timeout");
    assert_eq!(report("fault_hang__aaaaaaaa")["timed_out"], true);
    assert_eq!(report("fault_noapply__cccccccc")["verdict"], "apply_failed");
    let escape = report("fault_escape__bbbbbbbb");
    assert_eq!(escape["verdict"], "error", "{escape:#}");
    assert!(escape["error"].as_str().unwrap().contains("outside the work tree"), "{escape:#}");
    // The workers were replaced: every other candidate still got a real verdict.
    let counts = verdict_counts(&summary);
    assert_eq!(counts.get("error"), Some(&1), "{counts:?}");
    assert!(counts.get("valid").copied().unwrap_or(0) >= 10, "{counts:?}");
    let ours = reports.keys().filter(|id| !id.contains(".fault_")).count();
    assert_eq!(ours + 3, reports.len());
}

#[test]
fn hangs_bad_patches_and_escaping_tests_are_recorded_and_the_run_goes_on_locally() {
    check_faults(&prepared_with_faults(), "local");
}

#[test]
fn docker_hangs_bad_patches_and_escaping_tests_are_recorded_and_containers_are_removed() {
    if !docker_ready() {
        return;
    }
    let prepared = prepared_with_faults();
    check_faults(&prepared, "docker");
    let left = Command::new("docker")
        .args(["ps", "-a", "--filter", "label=bugsmith.run", "--format", "{{.Label \"bugsmith.run\"}}"])
        .output()
        .unwrap();
    // The hostile tests plant containers of other (fake) runs, named `planted-…`; any other is ours.
    let ours: Vec<String> = String::from_utf8_lossy(&left.stdout)
        .lines()
        .filter(|l| !l.starts_with("planted-"))
        .map(str::to_string)
        .collect();
    assert!(ours.is_empty(), "containers left behind: {ours:?}");
}

#[test]
fn a_killed_run_resumes_without_lost_or_duplicated_reports() {
    let prepared = prepare(manifest().join("tests/fixtures/repos/inventory").to_str().unwrap(), "3");
    let total = bugsmith::validate::find_candidates(&prepared.candidates, &prepared.repo_name).len();
    let out = prepared.dir.path().join("out-local");
    let run_dir = out.join("run_validation").join(&prepared.repo_name);
    // The environment first, so the run to be killed spends its time on candidates.
    let built = bugsmith(
        &["env", "build", prepared.profile.to_str().unwrap(), "--out", out.to_str().unwrap()],
        &shared_cache(),
    );
    assert!(built.status.success(), "{}", stderr(&built));
    let mut child = Command::new(env!("CARGO_BIN_EXE_bugsmith"))
        .args(["validate", prepared.profile.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .args(["--candidates", prepared.candidates.to_str().unwrap(), "-j", "1"])
        .env("BUGSMITH_STRATEGIES", manifest().join("strategies"))
        .env("BUGSMITH_CACHE", shared_cache())
        .env("BUGSMITH_NO_PROGRESS", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let done = || {
        std::fs::read_dir(&run_dir)
            .map_or(0, |d| d.filter(|e| e.as_ref().unwrap().path().join("report.json").exists()).count())
    };
    for _ in 0..2400 {
        if done() >= 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = done();
    assert!(before >= 3 && before < total, "killed after {before} of {total}");

    let summary = prepared.validate("local", &["-j", "2"]);
    assert_eq!(summary["skipped_done"].as_u64().unwrap() as usize, before);
    assert_eq!((summary["ran"].as_u64().unwrap() + summary["skipped_done"].as_u64().unwrap()) as usize, total);
    assert_eq!(prepared.reports("local").len(), total);
    let folders = std::fs::read_dir(&run_dir).unwrap().count();
    assert_eq!(folders, total + 1, "one folder per candidate plus the baseline");
}

#[test]
fn an_unreachable_docker_daemon_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.yaml");
    let init = bugsmith(
        &[
            "profile",
            "init",
            manifest().join("tests/fixtures/repos/inventory").to_str().unwrap(),
            "-o",
            profile.to_str().unwrap(),
        ],
        &shared_cache(),
    );
    assert!(init.status.success());
    let output = Command::new(env!("CARGO_BIN_EXE_bugsmith"))
        .args(["env", "build", profile.to_str().unwrap(), "--backend", "docker"])
        .env("BUGSMITH_CACHE", shared_cache())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("cannot reach the Docker daemon at unix:///nonexistent/docker.sock"), "{message}");
}

#[test]
fn profile_init_detects_extras_and_requirements_files() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("proj");
    std::fs::create_dir_all(repo.join("tests")).unwrap();
    std::fs::write(
        repo.join("setup.cfg"),
        "[metadata]\nname = proj\n[options.extras_require]\ntesting =\n    pytest\n",
    )
    .unwrap();
    std::fs::write(repo.join("setup.py"), "from setuptools import setup\nsetup()\n").unwrap();
    std::fs::write(repo.join("requirements-dev.txt"), "pytest\n").unwrap();
    std::fs::write(repo.join("tests/test_a.py"), "def test_a():\n    pass\n").unwrap();
    let profile = dir.path().join("p.yaml");
    let out = bugsmith(&["profile", "init", repo.to_str().unwrap(), "-o", profile.to_str().unwrap()], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&profile).unwrap();
    assert!(text.contains("python -m pip install -e '.[testing]'"), "{text}");
    assert!(text.contains("python -m pip install -r requirements-dev.txt"), "{text}");
    assert!(text.contains("test_cmd: python -m pytest"), "{text}");
    assert!(text.contains("image_name: bugsmith/swesmith.x86_64.local_1776_proj."), "{text}");
}

#[test]
fn a_failing_install_command_is_named_with_its_output_and_the_log_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.yaml");
    let cache = dir.path().join("cache");
    let init = bugsmith(
        &[
            "profile",
            "init",
            manifest().join("tests/fixtures/repos/inventory").to_str().unwrap(),
            "-o",
            profile.to_str().unwrap(),
        ],
        &cache,
    );
    assert!(init.status.success());
    let text = std::fs::read_to_string(&profile).unwrap();
    let broken = text.replace("install:\n", "install:\n- echo the step said this >&2; exit 3\n");
    std::fs::write(&profile, broken).unwrap();
    let out = dir.path().join("out");
    let build = bugsmith(&["env", "build", profile.to_str().unwrap(), "--out", out.to_str().unwrap()], &cache);
    assert_eq!(build.status.code(), Some(1));
    let message = stderr(&build);
    assert!(
        message.contains("environment build failed at `echo the step said this >&2; exit 3` (exit 3)"),
        "{message}"
    );
    assert!(message.contains("the step said this"), "{message}");
    let repo_name = text.lines().find_map(|l| l.strip_prefix("repo_name: ")).unwrap();
    let log = std::fs::read_to_string(out.join("build_images/env").join(repo_name).join("build_env.log")).unwrap();
    assert!(log.contains("$ echo the step said this"), "{log}");
}

#[test]
fn a_layout_whose_imports_miss_the_workers_checkout_is_reported_not_validated_silently() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("odd");
    std::fs::create_dir_all(repo.join("lib/oddpkg")).unwrap();
    std::fs::create_dir_all(repo.join("tests")).unwrap();
    std::fs::write(repo.join("lib/oddpkg/__init__.py"), "def double(x):\n    return x * 2\n").unwrap();
    std::fs::write(
        repo.join("tests/test_odd.py"),
        "from oddpkg import double\n\ndef test_double():\n    assert double(2) == 4\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("pyproject.toml"),
        "[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n[project]\nname = \"oddpkg\"\nversion = \"0.1\"\n[tool.setuptools.packages.find]\nwhere = [\"lib\"]\n",
    )
    .unwrap();
    let profile = dir.path().join("p.yaml");
    let cache = dir.path().join("cache");
    assert!(
        bugsmith(&["profile", "init", repo.to_str().unwrap(), "-o", profile.to_str().unwrap()], &cache)
            .status
            .success()
    );
    let out = dir.path().join("out");
    let candidates = out.join("cands");
    std::fs::create_dir_all(&candidates).unwrap();
    std::fs::write(candidates.join("bug__noop__aaaaaaaa.diff"), "").unwrap();
    let validate = bugsmith(
        &[
            "validate",
            profile.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--candidates",
            candidates.to_str().unwrap(),
        ],
        &cache,
    );
    assert_eq!(validate.status.code(), Some(1));
    let message = stderr(&validate);
    assert!(message.contains("would import `oddpkg`") && message.contains("PYTHONPATH"), "{message}");

    // With the folder on PYTHONPATH, as the message says, it works.
    let text = std::fs::read_to_string(&profile).unwrap().replace("env: {}", "env:\n  PYTHONPATH: lib");
    std::fs::write(&profile, text).unwrap();
    let fixed = bugsmith(
        &[
            "validate",
            profile.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--candidates",
            candidates.to_str().unwrap(),
        ],
        &cache,
    );
    assert!(fixed.status.success(), "{}", stderr(&fixed));
}
