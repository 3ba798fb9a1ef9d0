//! `cargo bench --bench containment [-- N]`: what containment costs per candidate in a warm
//! worker, side by side in one run: N runs (default 40) of the runner with a test command that
//! does nothing, on the `hostile` fixture, for the local backend without and with its sandbox,
//! and for Docker (when a daemon answers), each with and without the sweep of leftover
//! processes. The budget is 50 ms per candidate for what containment adds.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use bugsmith::backend::docker::DockerBackend;
use bugsmith::backend::local::LocalBackend;
use bugsmith::backend::{Backend, Containment};
use bugsmith::profile::Profile;
use bugsmith::source::{SourceSpec, fetch};
use bugsmith::validate::runner_env;
use common::{bugsmith, manifest, shared_cache};

/// Median milliseconds of `runs` empty candidates in one warm worker; `sweep: false` turns the
/// runner's sweep off.
fn per_candidate(backend: &dyn Backend, profile: &Profile, runs: usize, sweep: bool) -> f64 {
    let checkout = fetch(&SourceSpec::parse(&profile.source).unwrap(), &shared_cache()).unwrap();
    let log_dir = tempfile::tempdir().unwrap();
    backend.build_env(profile, &checkout, log_dir.path()).unwrap();
    let mut worker = backend.start_worker(profile, &checkout, 0).unwrap();
    let mut times = Vec::new();
    for i in 0..runs + 3 {
        let mut env = runner_env(worker.as_ref(), profile, Duration::from_secs(30));
        env.push(("SWEEP".into(), if sweep { "1" } else { "0" }.into()));
        let started = Instant::now();
        let out = worker.run_candidate(&[("patch.diff", "")], env, Duration::from_secs(60)).unwrap();
        assert!(out.output.contains(">>>>> bugsmith exit 0"), "{}", out.output);
        if i >= 3 {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let runs: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(40);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profile.yaml");
    let source = manifest().join("tests/fixtures/repos/hostile");
    assert!(
        bugsmith(&["profile", "init", source.to_str().unwrap(), "-o", path.to_str().unwrap()], &shared_cache())
            .status
            .success()
    );
    let mut profile = Profile::load(&path).unwrap();
    profile.test_cmd = "true".into();
    println!("per-candidate time of an empty candidate in a warm worker (median of {runs}):");
    let local = |sandbox| {
        LocalBackend::new(&shared_cache()).with_containment(Containment { sandbox, ..Containment::default() })
    };
    let bare = per_candidate(&local(false), &profile, runs, false);
    println!("  local, --no-sandbox             {bare:7.1} ms");
    let sandboxed = per_candidate(&local(true), &profile, runs, false);
    println!("  local, sandbox, no sweep        {sandboxed:7.1} ms  (+{:.1} ms)", sandboxed - bare);
    let swept = per_candidate(&local(true), &profile, runs, true);
    println!("  local, sandbox + sweep          {swept:7.1} ms  (+{:.1} ms)", swept - bare);
    match DockerBackend::connect(Default::default()) {
        Ok(docker) => {
            let plain = per_candidate(&docker, &profile, runs, false);
            println!("  docker, no sweep                {plain:7.1} ms");
            let swept = per_candidate(&docker, &profile, runs, true);
            println!("  docker + sweep                  {swept:7.1} ms  (+{:.1} ms)", swept - plain);
        }
        Err(e) => println!("  docker: skipped ({e})"),
    }
}
