//! Benchmark: validation on a real sdist (default `pypi:tinydb==4.8.2`) with both backends.
//! Prints the per-candidate overhead in a warm worker (apply the patch, run a test command that
//! does nothing, reset: one round trip) and validated candidates per minute with the real suite.
//!
//! Run: `cargo bench --bench validate [-- SOURCE]`. Docker figures need a daemon and the base
//! image (`.ci/base-image.sh`); without them only the local backend is measured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bugsmith::backend::Backend;
use bugsmith::backend::docker::DockerBackend;
use bugsmith::backend::local::LocalBackend;
use bugsmith::bug_gen::{self, Plan, Report};
use bugsmith::profile::{LogParser, Profile};
use bugsmith::progress::NoProgress;
use bugsmith::script::Strategy;
use bugsmith::script::catalog::Catalog;
use bugsmith::script::data::Params;
use bugsmith::source::{self, Checkout, SourceSpec};
use bugsmith::validate::{self, CandidateFile, Settings};

fn candidates(checkout: &Checkout, out: &std::path::Path) -> Vec<CandidateFile> {
    let catalog = Catalog::locate(Some(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("strategies")), false);
    let plans: Vec<Plan> = catalog
        .origins("procedural")
        .into_iter()
        .map(|origin| Plan {
            strategy: Arc::new(Strategy::load(catalog.engine(), origin).unwrap()),
            overrides: Params::default(),
            max_bugs: Some(5),
            threads: None,
        })
        .collect();
    let paths: Vec<String> = bugsmith::git::tracked_files(&checkout.root)
        .unwrap()
        .into_iter()
        .filter(|p| bug_gen::is_candidate_source(p))
        .collect();
    let (files, _) = bug_gen::parse_files(&checkout.root, &paths, &NoProgress);
    let made = bug_gen::generate(&files, &plans, 24, &NoProgress, &mut Report::default());
    let dir = out.join("bug_gen").join(&checkout.repo_name);
    bug_gen::write_candidates(&dir, &made).unwrap();
    validate::find_candidates(&dir, &checkout.repo_name)
}

fn measure(
    backend: &dyn Backend,
    profile: &Profile,
    checkout: &Checkout,
    found: &[CandidateFile],
    out: &std::path::Path,
) {
    let started = Instant::now();
    let env = backend.build_env(profile, checkout, &out.join("build")).unwrap();
    println!("{}: environment ready in {:.1} s ({env})", backend.name(), started.elapsed().as_secs_f64());

    // Overhead: a real patch, a test command that does nothing, the reset, in one warm worker.
    let mut quiet = profile.clone();
    quiet.test_cmd = "true".into();
    quiet.log_parser = LogParser::Unittest;
    let mut worker = backend.start_worker(profile, checkout, 0).unwrap();
    let patch = std::fs::read_to_string(&found[0].path).unwrap();
    let mut times: Vec<f64> = (0..40)
        .map(|_| {
            let t = Instant::now();
            let result = validate::run_once(worker.as_mut(), &quiet, &patch, Duration::from_secs(30));
            assert!(result.applied && result.broken.is_none(), "{:?}", result.broken);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    drop(worker);
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "{}: per-candidate overhead (apply + exec + reset, warm worker): median {:.1} ms, mean {mean:.1} ms, p90 {:.1} ms",
        backend.name(),
        times[times.len() / 2],
        times[times.len() * 9 / 10]
    );

    let jobs = std::thread::available_parallelism().map_or(2, usize::from);
    let settings = Settings {
        jobs,
        timeout: None,
        recycle_after: 200,
        run_dir: out.join(backend.name()),
        choice: bugsmith::validate::TestChoice { select: bugsmith::settings::Selector::All, ..Default::default() },
        deadline: None,
    };
    let summary = validate::validate(backend, profile, checkout, &env, found, &settings, &NoProgress).unwrap();
    println!(
        "{}: {} candidates, {} valid, {:.1} s with {jobs} workers (baseline included): {:.0} validated candidates/min",
        backend.name(),
        summary.ran,
        summary.total(validate::Verdict::Valid),
        summary.seconds,
        summary.per_minute
    );
}

fn main() {
    let source_text =
        std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_else(|| "pypi:tinydb==4.8.2".into());
    let cache = tempfile::tempdir().unwrap();
    let spec = SourceSpec::parse(&source_text).unwrap();
    let checkout = source::fetch(&spec, cache.path()).unwrap();
    let profile = Profile::detect(&source_text, &checkout, None);
    let out = tempfile::tempdir().unwrap();
    let found = candidates(&checkout, out.path());
    println!("{source_text}: {} candidates (at most 5 per strategy)", found.len());
    measure(&LocalBackend::new(cache.path()), &profile, &checkout, &found, out.path());
    match DockerBackend::connect(Default::default()) {
        Ok(docker) => measure(&docker, &profile, &checkout, &found, out.path()),
        Err(e) => println!("docker: not measured ({e})"),
    }
}
