//! Campaigns over fixture repositories: a failing source is recorded and the rest complete; a
//! killed campaign resumes; two shards merged equal the whole run; emitted cluster jobs are
//! well-formed; bad campaign files are refused with lines.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{git, manifest, shared_cache, stderr, stdout};

/// Three sources: two that work and one whose install fails.
fn campaign_file(dir: &Path) -> PathBuf {
    let repos = manifest().join("tests/fixtures/repos");
    let path = dir.join("trio.yaml");
    std::fs::write(
        &path,
        format!(
            "version: 1\nname: trio\nseed: 24\nmax_bugs: 2\nvalidate:\n  jobs: 1\nissues:\n  template: static\nsources:\n  - {}\n  - {}\n  - source: {}\n    max_bugs: 1\nemit:\n  shards: 2\n  shared_dir: /shared/trio\n  cpus: 2\n  memory: 8G\n  image: bugsmith:test\n",
            repos.join("inventory").display(),
            repos.join("broken_install").display(),
            repos.join("selection").display()
        ),
    )
    .unwrap();
    path
}

fn campaign(args: &[&str], dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bugsmith"));
    command
        .arg("campaign")
        .args(args)
        .current_dir(dir)
        .env("BUGSMITH_STRATEGIES", manifest().join("strategies"))
        .env("BUGSMITH_CACHE", shared_cache())
        .env("BUGSMITH_NO_PROGRESS", "1");
    command
}

fn run(args: &[&str], dir: &Path) -> Output {
    campaign(args, dir).output().unwrap()
}

fn record(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("campaign.json")).unwrap()).unwrap()
}

/// The instance file's lines without `created_at`, sorted.
fn instances(out: &Path, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(out.join("task_insts").join(format!("{name}.jsonl"))).unwrap();
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("created_at");
            v.to_string()
        })
        .collect();
    lines.sort();
    lines
}

/// Every mirror's branches with the tree each points at.
fn mirror_branches(out: &Path) -> Vec<String> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(out.join("mirrors")).unwrap().flatten() {
        let dir = entry.path();
        for branch in git(&dir, &["for-each-ref", "--format=%(refname:short)", "refs/heads"]).lines() {
            let tree = git(&dir, &["rev-parse", &format!("{branch}^{{tree}}")]);
            all.push(format!("{} {branch} {tree}", entry.file_name().to_string_lossy()));
        }
    }
    all.sort();
    all
}

#[test]
fn a_campaign_goes_on_past_a_failing_source_resumes_when_killed_and_its_shards_merge_to_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let file = campaign_file(dir.path());
    let file = file.to_str().unwrap();

    // Killed once some candidates of the first source are validated, then run again.
    let child = campaign(&[file, "--out", "whole"], dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let before = common::kill_after_reports(child, &dir.path().join("whole/run_validation"), 3);
    assert!(before >= 3, "killed after {before} reports");
    let resumed = run(&[file, "--out", "whole"], dir.path());
    let text = stdout(&resumed);
    assert_eq!(resumed.status.code(), Some(3), "some sources failed: exit 3\n{text}\n{}", stderr(&resumed));
    assert!(text.contains("== env: finished earlier, skipped"), "{text}");
    assert!(text.contains("already done"), "{text}");

    let whole = dir.path().join("whole");
    let r = record(&whole);
    let repos = r["repos"].as_array().unwrap();
    assert_eq!(repos.len(), 3);
    let statuses: Vec<&str> = repos.iter().map(|x| x["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["ok", "failed", "ok"]);
    assert_eq!(repos[1]["stage"], "env");
    assert!(repos[1]["reason"].as_str().unwrap().contains("pip install"), "{}", repos[1]["reason"]);
    assert!(whole.join(repos[1]["log"].as_str().unwrap()).is_file(), "{}", repos[1]["log"]);
    let total_instances: u64 = repos.iter().map(|x| x["instances"].as_u64().unwrap()).sum();
    assert!(total_instances > 0);
    assert_eq!(r["totals"]["instances"].as_u64(), Some(total_instances));
    assert_eq!(instances(&whole, "trio").len() as u64, total_instances);
    for key in ["tests", "candidates", "valid", "seconds", "per_strategy"] {
        assert!(!repos[0][key].is_null(), "{key}");
    }
    assert!(repos[0]["seconds"]["validate"].as_f64().unwrap() > 0.0);
    // `stats` reads the same reports: its figures agree with the campaign's.
    let stats_of = |outputs: &[&str]| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_bugsmith"))
            .arg("stats")
            .args(outputs)
            .arg("--json")
            .current_dir(dir.path())
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let stats = stats_of(&["whole"]);
    // An output named twice counts once.
    assert_eq!(stats_of(&["whole", "./whole"])["reports"], stats["reports"]);
    for (strategy, figures) in r["totals"]["per_strategy"].as_object().unwrap() {
        let s = &stats["strategies"][strategy];
        assert_eq!((&s["candidates"], &s["valid"]), (&figures["candidates"], &figures["valid"]), "{strategy}");
        let expected = figures["valid"].as_f64().unwrap() / figures["candidates"].as_f64().unwrap();
        assert!((s["yield"].as_f64().unwrap() - expected).abs() < 1e-9, "{strategy}");
        if figures["valid"].as_u64() > Some(0) {
            assert!(s["mean_f2p"].as_f64().unwrap() >= 1.0 && s["mean_lines_changed"].as_f64().unwrap() >= 1.0);
        }
    }
    let page = std::fs::read_to_string(whole.join("report.html")).unwrap();
    assert!(page.contains("<table id=\"strategies\">"));
    assert_eq!(page.matches("<tr class=").count(), 3);
    assert!(page.contains("Yield per strategy") && page.contains("Where time went"));

    // Shard 1/2 holds sources 1 and 3, shard 2/2 source 2 (which fails: exit 1, nothing ran).
    let one = run(&[file, "--shard", "1/2", "--out", "s1"], dir.path());
    assert_eq!(one.status.code(), Some(0), "{}\n{}", stdout(&one), stderr(&one));
    let two = run(&[file, "--shard", "2/2", "--out", "s2"], dir.path());
    assert_eq!(two.status.code(), Some(1), "{}\n{}", stdout(&two), stderr(&two));
    let merged = Command::new(env!("CARGO_BIN_EXE_bugsmith"))
        .args(["merge", "s1", "s2", "--out", "merged"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(merged.status.success(), "{}\n{}", stdout(&merged), stderr(&merged));
    let merged_dir = dir.path().join("merged");
    assert_eq!(instances(&merged_dir, "trio"), instances(&whole, "trio"));
    assert_eq!(mirror_branches(&merged_dir), mirror_branches(&whole));
    let m = record(&merged_dir);
    let slugs =
        |v: &serde_json::Value| v["repos"].as_array().unwrap().iter().map(|x| x["slug"].clone()).collect::<Vec<_>>();
    assert_eq!(slugs(&m), slugs(&r));
    assert_eq!(m["totals"]["instances"], r["totals"]["instances"]);
    assert_eq!(m["shards"], serde_json::json!(["1/2", "2/2"]));
}

#[test]
fn when_the_time_budget_ends_what_is_valid_is_gathered_and_the_rest_waits_for_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let repos = manifest().join("tests/fixtures/repos");
    let file = dir.path().join("short.yaml");
    std::fs::write(
        &file,
        format!(
            "version: 1\nname: short\nmax_bugs: 2\nvalidate:\n  jobs: 1\nissues:\n  template: static\nsources:\n  - {}\n  - {}\n",
            repos.join("inventory").display(),
            repos.join("selection").display()
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let cut = run(&[file, "--time-budget", "1s"], dir.path());
    assert_eq!(cut.status.code(), Some(0), "{}\n{}", stdout(&cut), stderr(&cut));
    let r = record(&dir.path().join("logs"));
    let repos = r["repos"].as_array().unwrap();
    assert!(repos.iter().all(|x| x["status"] == "partial"), "{r}");
    assert!(repos[0]["validated"].as_u64() < repos[0]["candidates"].as_u64(), "{r}");
    // The first source's share passed before validation could start: it stopped there.
    assert_eq!(repos[0]["stage"], "validate", "{r}");
    assert!(repos.iter().all(|x| x["reason"].as_str().unwrap().contains("time budget ran out")), "{r}");
    // Without the budget the next run finishes both, keeping what the first validated.
    let rest = run(&[file], dir.path());
    assert_eq!(rest.status.code(), Some(0), "{}\n{}", stdout(&rest), stderr(&rest));
    let r = record(&dir.path().join("logs"));
    for repo in r["repos"].as_array().unwrap() {
        assert_eq!(repo["status"], "ok", "{r}");
        assert_eq!(repo["validated"], repo["candidates"], "{r}");
    }
}

#[test]
fn campaign_check_names_unknown_keys_with_their_lines_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "version: 1\nmax_bug: 3\nsources:\n  - source: a\n    colour: red\n").unwrap();
    let out = run(&[file.to_str().unwrap(), "--check"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(text.contains("line 2: ") && text.contains("max_bug"), "{text}");
    assert!(text.contains("line 4: ") && text.contains("colour"), "{text}");
    let good = campaign_file(dir.path());
    let out = run(&[good.to_str().unwrap(), "--check"], dir.path());
    assert!(out.status.success() && stdout(&out).contains("3 sources"), "{}", stdout(&out));
}

#[test]
fn the_example_campaigns_check() {
    let dir = manifest().join("recipes/campaigns");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let out = run(&[entry.path().to_str().unwrap(), "--check"], &dir);
        assert!(out.status.success(), "{}: {}", entry.path().display(), stderr(&out));
        seen += 1;
    }
    assert!(seen >= 1);
}

#[test]
fn emitted_slurm_jobs_are_an_array_of_shards_and_a_merge_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = campaign_file(dir.path());
    let out = run(&[file.to_str().unwrap(), "--emit", "slurm", "jobs"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let jobs = dir.path().join("jobs");
    let array = std::fs::read_to_string(jobs.join("campaign.sbatch")).unwrap();
    assert!(array.contains("#SBATCH --array=1-2") && array.contains("--shard \"${SLURM_ARRAY_TASK_ID}/2\""), "{array}");
    assert!(array.contains("#SBATCH --cpus-per-task=2") && array.contains("#SBATCH --mem=8G"), "{array}");
    let merge = std::fs::read_to_string(jobs.join("merge.sbatch")).unwrap();
    // The shards that finished, whatever became of the others.
    assert!(
        merge.contains("'/shared/trio'/shard-\"$k\"/campaign.finished")
            && merge.contains("merge \"$@\" --out '/shared/trio'/merged"),
        "{merge}"
    );
    let submit = std::fs::read_to_string(jobs.join("submit.sh")).unwrap();
    assert!(submit.contains("--dependency=afterany:"), "{submit}");
    for script in ["campaign.sbatch", "merge.sbatch", "submit.sh"] {
        let syntax = Command::new("bash").arg("-n").arg(jobs.join(script)).output().unwrap();
        assert!(syntax.status.success(), "{script}: {}", stderr(&syntax));
    }
}

#[test]
fn emitted_kubernetes_manifests_are_an_indexed_job_and_a_merge_job_that_fit_the_api_schema() {
    let dir = tempfile::tempdir().unwrap();
    let file = campaign_file(dir.path());
    let out = run(&[file.to_str().unwrap(), "--emit", "k8s", "jobs"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let path = dir.path().join("jobs/campaign.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs: Vec<serde_json::Value> =
        text.split("\n---\n").skip(1).map(|d| serde_yaml::from_str::<serde_json::Value>(d).unwrap()).collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ConfigMap", "Job", "Job"]);
    assert_eq!(docs[1]["spec"]["completionMode"], "Indexed");
    assert_eq!(docs[1]["spec"]["completions"], 2);
    assert!(docs[0]["data"]["campaign.yaml"].as_str().unwrap().contains("name: trio"));
    let command = docs[1]["spec"]["template"]["spec"]["containers"][0]["command"][2].as_str().unwrap();
    assert!(command.contains("--shard \"$k/2\"") && command.contains("--no-sandbox"), "{command}");
    // The Kubernetes API schema, offline (`kubernetes-validate` ships the schemas).
    match Command::new("kubernetes-validate").arg("--strict").arg(&path).output() {
        Ok(check) => assert!(check.status.success(), "{}\n{}", stdout(&check), stderr(&check)),
        Err(_) => {
            assert!(
                std::env::var_os("BUGSMITH_REQUIRE_CLUSTER_TOOLS").is_none(),
                "BUGSMITH_REQUIRE_CLUSTER_TOOLS is set but kubernetes-validate is not installed"
            );
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"skipped: the schema check (kubernetes-validate is not installed)\n",
            );
        }
    }
}

#[test]
fn usage_errors_of_campaign_and_merge_exit_2_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.yaml");
    std::fs::write(&file, "version: 1\nname: one\nsources:\n  - pypi:tinydb==4.8.2\n").unwrap();
    let file = file.to_str().unwrap();
    let no_out = run(&[file, "--shard", "1/2"], dir.path());
    assert_eq!(no_out.status.code(), Some(2), "{}", stderr(&no_out));
    assert!(stderr(&no_out).contains("--shard needs --out"), "{}", stderr(&no_out));
    let bad_emit = run(&[file, "--emit", "nomad", "jobs"], dir.path());
    assert_eq!(bad_emit.status.code(), Some(2), "{}", stderr(&bad_emit));
    let merge = Command::new(env!("CARGO_BIN_EXE_bugsmith"))
        .args(["merge", "nowhere", "--out", "merged"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(merge.status.code(), Some(2), "{}", stderr(&merge));
    assert!(!dir.path().join("logs").exists() && !dir.path().join("merged").exists(), "nothing ran");
}

#[test]
fn a_kubernetes_merge_joins_the_shards_that_finished_once_the_others_used_up_their_attempts_or_time() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    // Two sources with no Python in them: each shard ends in a second (and exits 1).
    for name in ["first", "second"] {
        std::fs::create_dir_all(dir.path().join(name)).unwrap();
        std::fs::write(dir.path().join(name).join("README.txt"), "no code here\n").unwrap();
    }
    let file = dir.path().join("lost.yaml");
    std::fs::write(
        &file,
        format!(
            "version: 1\nname: lost\nsources:\n  - {}\n  - {}\nemit:\n  shards: 2\n  shared_dir: {}\n  bugsmith: {}\n  merge_wait: 2s\n",
            dir.path().join("first").display(),
            dir.path().join("second").display(),
            shared.display(),
            env!("CARGO_BIN_EXE_bugsmith")
        ),
    )
    .unwrap();
    let out = run(&[file.to_str().unwrap(), "--emit", "k8s", "jobs"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(dir.path().join("jobs/campaign.yaml")).unwrap();
    let docs: Vec<serde_json::Value> =
        text.split("\n---\n").skip(1).map(|d| serde_yaml::from_str::<serde_json::Value>(d).unwrap()).collect();
    let script = |value: &serde_json::Value| value["command"][2].as_str().unwrap().to_string();
    let shard = script(&docs[1]["spec"]["template"]["spec"]["containers"][0]);
    let wait = script(&docs[2]["spec"]["template"]["spec"]["initContainers"][0]);
    let merge = script(&docs[2]["spec"]["template"]["spec"]["containers"][0]);
    // The pods' scripts, run here: the ConfigMap's path becomes the file's.
    let sh = |script: &str, index: &str, config: &Path| {
        let started = std::time::Instant::now();
        let output = Command::new("sh")
            .arg("-c")
            .arg(script.replace("/etc/bugsmith/campaign.yaml", config.to_str().unwrap()))
            .env("JOB_COMPLETION_INDEX", index)
            .env("BUGSMITH_CACHE", shared_cache())
            .env("BUGSMITH_NO_PROGRESS", "1")
            .current_dir(dir.path())
            .output()
            .unwrap();
        (output, started.elapsed())
    };

    // Shard 1 runs (its only source fails, so it exits 1): it finished, and counts the attempt.
    let (first, _) = sh(&shard, "0", &file);
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));
    assert!(shared.join("shard-1/campaign.finished").is_file());
    assert_eq!(std::fs::read_to_string(shared.join("shard-1/attempts.failed")).unwrap(), "1\n");

    // Shard 2's pod is lost without a trace: the wait gives up after `merge_wait`.
    let (waited, took) = sh(&wait, "", &file);
    assert!(waited.status.success(), "{}", stderr(&waited));
    assert!(stderr(&waited).contains("1 of 2 shards ended"), "{}", stderr(&waited));
    assert!(took >= std::time::Duration::from_secs(2) && took < std::time::Duration::from_secs(20), "{took:?}");

    // Shard 2 fails both its attempts (here: its campaign file is gone): the wait ends at once.
    for _ in 0..2 {
        let (failed, _) = sh(&shard, "1", &dir.path().join("gone.yaml"));
        assert_eq!(failed.status.code(), Some(2), "{}", stderr(&failed));
    }
    let (waited, took) = sh(&wait, "", &file);
    assert!(waited.status.success() && took < std::time::Duration::from_secs(2), "{took:?} {}", stderr(&waited));

    // The merge joins shard 1, names shard 2 and says so with exit 3.
    let (merged, _) = sh(&merge, "", &file);
    assert_eq!(merged.status.code(), Some(3), "{}\n{}", stdout(&merged), stderr(&merged));
    assert!(stderr(&merged).contains("shard(s) 2 of 2 did not finish"), "{}", stderr(&merged));
    assert_eq!(record(&shared.join("merged"))["shards"], serde_json::json!(["1/2"]));
}
