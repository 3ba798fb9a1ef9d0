//! Benchmark: one campaign over real PyPI sdists that ship tests (default five small libraries),
//! local backend, `max_bugs: 10`, static issue text; prints per source its tests, candidates,
//! valid and instances with the seconds per stage, then instances, wall time and instances per
//! hour for the whole campaign (environment builds included; the sdists and environments come
//! from the bench cache when an earlier run made them).
//!
//! Run: `cargo bench --bench campaign [-- SOURCE...]`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const SOURCES: [&str; 5] = [
    "pypi:tinydb==4.8.2",
    "pypi:cachetools==5.3.3",
    "pypi:toolz==0.12.1",
    "pypi:isodate==0.6.1",
    "pypi:more-itertools==10.2.0",
];

fn main() {
    let mut sources: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if sources.is_empty() {
        sources = SOURCES.iter().map(|s| (*s).to_string()).collect();
    }
    let cache = std::env::var_os("BUGSMITH_CACHE")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-cache"), std::path::PathBuf::from);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bench.yaml");
    let list: String = sources.iter().map(|s| format!("  - {s}\n")).collect();
    std::fs::write(
        &file,
        format!("version: 1\nname: bench\nseed: 24\nmax_bugs: 10\nissues:\n  template: static\nsources:\n{list}"),
    )
    .unwrap();
    let out = dir.path().join("out");
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_bugsmith"))
        .args(["campaign", file.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .env("BUGSMITH_CACHE", &cache)
        .env("BUGSMITH_NO_PROGRESS", "1")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("bugsmith runs");
    let wall = started.elapsed().as_secs_f64();
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("campaign.json")).expect("campaign.json")).unwrap();
    println!(
        "{:<36} {:>6} {:>6} {:>10} {:>6} {:>9} {:>6} {:>6} {:>9}",
        "source", "status", "tests", "candidates", "valid", "instances", "env s", "gen s", "validate s"
    );
    for repo in record["repos"].as_array().unwrap() {
        let s = |stage: &str| repo["seconds"][stage].as_f64().unwrap_or(0.0);
        println!(
            "{:<36} {:>6} {:>6} {:>10} {:>6} {:>9} {:>6.0} {:>6.1} {:>9.0}",
            repo["source"].as_str().unwrap_or(""),
            repo["status"].as_str().unwrap_or(""),
            repo["tests"].as_u64().unwrap_or(0),
            repo["candidates"].as_u64().unwrap_or(0),
            repo["valid"].as_u64().unwrap_or(0),
            repo["instances"].as_u64().unwrap_or(0),
            s("env"),
            s("gen"),
            s("validate")
        );
    }
    let instances = record["totals"]["instances"].as_u64().unwrap_or(0);
    println!(
        "campaign: {} sources, {instances} instances in {wall:.0} s wall ({status}): {:.0} instances/hour on {} cores",
        record["repos"].as_array().map_or(0, Vec::len),
        instances as f64 * 3600.0 / wall.max(1e-9),
        std::thread::available_parallelism().map_or(1, usize::from)
    );
}
