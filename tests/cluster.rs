//! One small campaign on real engines: validated on two Docker daemons at once, its report read
//! back from a headless browser, and run again as a two-shard Slurm array job with a dependent
//! merge. Each part says when it is skipped (its engine is missing); CI installs and starts all
//! of them and sets `BUGSMITH_REQUIRE_CLUSTER_TOOLS`, which turns a skip into a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{manifest, shared_cache, stderr, stdout};

const SECOND_DAEMON: &str = "BUGSMITH_SECOND_DOCKER_HOST";

fn skip(what: &str) {
    assert!(
        std::env::var_os("BUGSMITH_REQUIRE_CLUSTER_TOOLS").is_none(),
        "BUGSMITH_REQUIRE_CLUSTER_TOOLS is set but {what}"
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("skipped: {what}\n").as_bytes());
}

fn available(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success())
}

fn bugsmith(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bugsmith"));
    command
        .current_dir(dir)
        .env("BUGSMITH_STRATEGIES", manifest().join("strategies"))
        .env("BUGSMITH_CACHE", shared_cache())
        .env("BUGSMITH_NO_PROGRESS", "1");
    command
}

/// Two sources, one candidate per strategy; jobs for two Slurm shards.
fn campaign_file(dir: &Path) -> PathBuf {
    let repos = manifest().join("tests/fixtures/repos");
    let path = dir.join("pair.yaml");
    std::fs::write(
        &path,
        format!(
            "version: 1\nname: pair\nseed: 24\nmax_bugs: 1\nissues:\n  template: static\nsources:\n  - {}\n  - {}\nemit:\n  shards: 2\n  shared_dir: {}\n  bugsmith: {}\n",
            repos.join("inventory").display(),
            repos.join("selection").display(),
            dir.join("shared").display(),
            env!("CARGO_BIN_EXE_bugsmith"),
        ),
    )
    .unwrap();
    path
}

/// Instance ids with their F2P, sorted.
fn outcomes(out: &Path) -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(out.join("task_insts/pair.jsonl")).unwrap();
    let mut all: Vec<(String, Vec<String>)> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let mut f2p: Vec<String> =
                v["FAIL_TO_PASS"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
            f2p.sort();
            (v["instance_id"].as_str().unwrap().to_string(), f2p)
        })
        .collect();
    all.sort();
    all
}

fn docker(host: &str, args: &[&str]) -> String {
    let out = Command::new("docker").arg("-H").arg(host).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn one_campaign_runs_on_two_docker_daemons_reads_back_in_a_browser_and_runs_as_slurm_shards() {
    let dir = tempfile::tempdir().unwrap();
    let file = campaign_file(dir.path());
    let file_arg = file.to_str().unwrap();

    // 1. Two Docker daemons: workers on both, the image copied to the second.
    let first = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let second = std::env::var(SECOND_DAEMON).ok();
    let docker_out = dir.path().join("docker");
    let reference = match (common::docker_ready(), second) {
        (true, Some(second)) => {
            // The second daemon starts without the repositories' images: they must be copied.
            for image in docker(&second, &["images", "--format", "{{.Repository}}:{{.Tag}}"]).lines() {
                if image.starts_with("bugsmith-validation/") {
                    docker(&second, &["rmi", "-f", image]);
                }
            }
            let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            let out = bugsmith(dir.path())
                .args(["campaign", file_arg, "--out", "docker", "--backend", "docker", "-j", "2"])
                .args(["--docker-host", &first, "--docker-host", &second])
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
            for host in [&first, &second] {
                let starts = docker(
                    host,
                    &[
                        "events",
                        "--since",
                        &since.to_string(),
                        "--until",
                        &std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_secs()
                            .to_string(),
                        "--filter",
                        "type=container",
                        "--filter",
                        "event=start",
                    ],
                );
                assert!(starts.lines().count() > 0, "no container started on {host}");
            }
            let copied = docker(&second, &["images", "--format", "{{.Repository}}"]);
            assert!(copied.lines().filter(|l| l.starts_with("bugsmith-validation/")).count() >= 2, "{copied}");
            Some(docker_out.clone())
        }
        (false, _) => {
            skip("the two-daemon part (no Docker daemon with the base image)");
            None
        }
        (true, None) => {
            skip(&format!("the two-daemon part ({SECOND_DAEMON} names no second daemon)"));
            None
        }
    };
    // Without two daemons, the same campaign on the local backend feeds the other parts.
    let reference = reference.unwrap_or_else(|| {
        let out = bugsmith(dir.path()).args(["campaign", file_arg, "--out", "local"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
        dir.path().join("local")
    });
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference.join("campaign.json")).unwrap()).unwrap();
    assert_eq!(record["totals"]["ok"], 2);

    // 2. The report in a real headless browser: a screenshot, and the table read back.
    if available("chromium") {
        let page = format!("file://{}", reference.join("report.html").display());
        let shot = dir.path().join("report.png");
        let browser = |args: &[&str]| {
            Command::new("chromium")
                .args(["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,1600"])
                .args(args)
                .arg(&page)
                .output()
                .unwrap()
        };
        let out = browser(&[&format!("--screenshot={}", shot.display())]);
        let png = std::fs::read(&shot).unwrap_or_default();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "screenshot: {}", stderr(&out));
        let dom = stdout(&browser(&["--dump-dom"]));
        let table = &dom[dom.find("<table id=\"repos\"").expect("the repository table")..];
        let table = &table[..table.find("</table>").unwrap()];
        let rows: Vec<Vec<String>> = table
            .split("<tr")
            .skip(2)
            .map(|row| {
                row.split("<td")
                    .skip(1)
                    .map(|cell| {
                        let cell = &cell[cell.find('>').unwrap() + 1..];
                        cell[..cell.find("</td>").unwrap()].to_string()
                    })
                    .collect()
            })
            .collect();
        let repos = record["repos"].as_array().unwrap();
        assert_eq!(rows.len(), repos.len());
        for (row, repo) in rows.iter().zip(repos) {
            assert_eq!(row[0], repo["source"].as_str().unwrap());
            assert_eq!(row[2], repo["status"].as_str().unwrap());
            assert_eq!(row[8], repo["instances"].to_string());
        }
    } else {
        skip("the browser part (chromium is not installed)");
    }

    // 3. Slurm: the emitted array job runs one shard per task, then the merge.
    if available("sbatch") && Command::new("sinfo").output().is_ok_and(|o| o.status.success()) {
        let out = bugsmith(dir.path()).args(["campaign", file_arg, "--emit", "slurm", "jobs"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let submit = Command::new("bash")
            .arg(dir.path().join("jobs/submit.sh"))
            .env("BUGSMITH_STRATEGIES", manifest().join("strategies"))
            .env("BUGSMITH_CACHE", shared_cache())
            .env("BUGSMITH_NO_PROGRESS", "1")
            .output()
            .unwrap();
        assert!(submit.status.success(), "{}\n{}", stdout(&submit), stderr(&submit));
        let merged = dir.path().join("shared/merged");
        let started = Instant::now();
        let logs = || {
            std::fs::read_dir(dir.path().join("shared/slurm"))
                .map(|d| d.flatten().map(|e| std::fs::read_to_string(e.path()).unwrap_or_default()).collect::<Vec<_>>())
                .unwrap_or_default()
                .join("\n")
        };
        while queued(&stdout(&submit)) {
            assert!(started.elapsed() < Duration::from_secs(900), "the Slurm jobs did not finish: {}", logs());
            std::thread::sleep(Duration::from_secs(2));
        }
        assert!(merged.join("campaign.json").exists(), "no merged output: {}", logs());
        assert_eq!(outcomes(&merged), outcomes(&reference));
        for k in 1..=2 {
            assert!(dir.path().join(format!("shared/shard-{k}/campaign.json")).exists());
        }
    } else {
        skip("the Slurm part (no Slurm controller answers: run .ci/slurm.sh)");
    }
}

/// Whether a job `submit.sh` named is still queued or running.
fn queued(submitted: &str) -> bool {
    let ids: Vec<&str> = submitted.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).collect();
    let out = Command::new("squeue").args(["-h", "-j", &ids.join(",")]).output();
    out.is_ok_and(|o| !String::from_utf8_lossy(&o.stdout).trim().is_empty())
}
