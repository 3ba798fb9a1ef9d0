//! Docker containers of other runs: the start-up sweep removes only what is provably stale
//! (made on this host by a process that is gone), never a live run's workers or another
//! host's; `bugsmith docker prune` says what it kept and why, and removes the rest on request.
//! Alone in its test binary, because `prune --all` removes every bugsmith container.

mod common;

use std::process::Command;

use bugsmith::backend::owner::{Owner, host_id};
use common::{bugsmith, docker_ready, manifest, shared_cache, stderr, stdout};

/// Creates a container labelled as another run's, owned by `owner`; returns its name.
fn plant(name: &str, owner: &str) -> String {
    let name = format!("planted-{name}-{}", std::process::id());
    let created = Command::new("docker")
        .args(["create", "--name", &name, "--label", &format!("bugsmith.run={name}")])
        .args(["--label", &format!("bugsmith.owner={owner}"), "bugsmith-base:bookworm", "sleep", "300"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    name
}

fn exists(name: &str) -> bool {
    let out = Command::new("docker").args(["ps", "-aq", "--filter", &format!("name=^{name}$")]).output().unwrap();
    !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

#[test]
fn only_provably_stale_containers_are_swept_and_prune_removes_the_rest_when_asked() {
    if !docker_ready() {
        return;
    }
    let mut finished = Command::new("true").spawn().unwrap();
    let dead_pid = finished.id();
    finished.wait().unwrap();
    let mut alive = Command::new("sleep").arg("300").spawn().unwrap();
    let live_owner = Owner::of(alive.id()).unwrap();
    let dead = plant("dead", &Owner { host: host_id(), pid: dead_pid, started: 1 }.to_text());
    let live = plant("live", &live_owner.to_text());
    let elsewhere =
        plant("elsewhere", &Owner { host: "another-machine/4026531836".into(), pid: 1, started: 1 }.to_text());

    // Any Docker command sweeps at start: the dead run's container goes, the others stay.
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.yaml");
    let source = manifest().join("tests/fixtures/repos/hostile");
    let init =
        bugsmith(&["profile", "init", source.to_str().unwrap(), "-o", profile.to_str().unwrap()], &shared_cache());
    assert!(init.status.success(), "{}", stderr(&init));
    let build = bugsmith(&["env", "build", profile.to_str().unwrap(), "--backend", "docker"], &shared_cache());
    assert!(build.status.success(), "{}", stderr(&build));
    assert!(!exists(&dead), "the dead run's container was left");
    assert!(exists(&live) && exists(&elsewhere), "a live run's (or another host's) container was removed");

    let prune = bugsmith(&["docker", "prune", "--older-than", "1h"], &shared_cache());
    let said = stdout(&prune);
    assert!(said.contains(&format!("kept /{live}: run {live} (pid {}) is alive", live_owner.pid)), "{said}");
    assert!(said.contains(&format!("kept /{elsewhere}: run {elsewhere} belongs to another host")), "{said}");
    assert!(exists(&live) && exists(&elsewhere));

    let all = bugsmith(&["docker", "prune", "--all"], &shared_cache());
    assert!(all.status.success(), "{}", stderr(&all));
    assert!(stdout(&all).contains(&format!("removed /{live}: --all")), "{}", stdout(&all));
    assert!(!exists(&live) && !exists(&elsewhere));
    alive.kill().unwrap();
    alive.wait().unwrap();
}
