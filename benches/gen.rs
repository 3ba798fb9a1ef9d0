//! Benchmark: `gen` with every procedural strategy over a large real corpus (by default the
//! Python standard library of the machine's `python3`), printing files/s, entities/s and
//! candidates/s for one worker thread and for all cores.
//!
//! Run: `cargo bench --bench gen [-- CORPUS_DIR]`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use bugsmith::bug_gen::{self, Plan, Report};
use bugsmith::progress::NoProgress;
use bugsmith::script::Strategy;
use bugsmith::script::catalog::Catalog;
use bugsmith::script::data::Params;

fn stdlib() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"])
        .output()
        .expect("python3");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn python_files(root: &Path) -> Vec<String> {
    let mut files: Vec<String> = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_entry(|e| e.file_name() != "site-packages")
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"))
        .filter(|p| bug_gen::is_candidate_source(p))
        .collect();
    files.sort();
    files
}

fn run(root: &Path, paths: &[String], threads: usize, out: &Path) {
    let pool = bugsmith::ast::deep_stack_pool(Some(threads)).build().unwrap();
    pool.install(|| {
        let catalog = Catalog::locate(Some(&Path::new(env!("CARGO_MANIFEST_DIR")).join("strategies")), false);
        let plans: Vec<Plan> = catalog
            .origins("procedural")
            .into_iter()
            .map(|origin| {
                let strategy = Strategy::load(catalog.engine(), origin).unwrap();
                Plan { overrides: Params::default(), strategy: Arc::new(strategy), max_bugs: None, threads: None }
            })
            .collect();
        let start = Instant::now();
        let (files, skipped) = bug_gen::parse_files(root, paths, &NoProgress);
        let parsed = start.elapsed().as_secs_f64();
        let mut report = Report { files: files.len(), ..Report::default() };
        let candidates = bug_gen::generate(&files, &plans, 24, &NoProgress, &mut report);
        let generated = start.elapsed().as_secs_f64();
        bug_gen::write_candidates(out, &candidates).unwrap();
        report.seconds = start.elapsed().as_secs_f64();
        let in_memory = report.candidates as f64 / generated;
        let tried: usize = report.strategies.values().map(|s| s.tried).sum();
        println!(
            "threads {threads}: {} files ({} skipped), {} entities, {} (strategy, entity) runs, {} candidates",
            report.files,
            skipped.len(),
            report.entities,
            tried,
            report.candidates
        );
        println!(
            "  parse {parsed:.2} s, mutate+diff {:.2} s, write {:.2} s, total {:.2} s",
            generated - parsed,
            report.seconds - generated,
            report.seconds
        );
        println!(
            "  in memory (parse, mutate, reparse, diff): {:.0} files/s, {:.0} entities/s, {in_memory:.0} candidates/s = {:.1}x SWE-smith's 74 candidates/s",
            report.files as f64 / generated,
            report.entities as f64 / generated,
            in_memory / 74.0
        );
        println!(
            "  with writing the bug_gen/ files: {:.0} files/s, {:.0} entities/s, {:.0} candidates/s",
            report.files_per_second(),
            report.entities_per_second(),
            report.candidates_per_second()
        );
    });
}

fn main() {
    let root = std::env::args().skip(1).find(|a| !a.starts_with('-')).map_or_else(stdlib, PathBuf::from);
    let paths = python_files(&root);
    println!("corpus {} ({} Python files after SWE-smith's test-path rule)", root.display(), paths.len());
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // Outputs stay until the end: deleting tens of thousands of files between runs slows the
    // next run's file creation in the kernel and would muddle the figures.
    let out = tempfile::tempdir().unwrap();
    run(&root, &paths, 1, &out.path().join("one"));
    if cores > 1 {
        run(&root, &paths, cores, &out.path().join("all"));
    }
}
