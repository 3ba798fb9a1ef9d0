//! The layers, checked: the pure core (Python model, patches, grading, randomness, settings
//! and plain data) imports nothing but the core; the adapters to external systems import no
//! stage; no stage imports another (only the orchestrators call stages); and no two modules
//! import each other, directly or through others.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const CORE: [&str; 11] =
    ["ast", "patch", "recipe", "rng", "grading", "ids", "profile", "settings", "changes", "progress", "coverage"];
/// The adapters to external systems, and what every stage shares on top of them: the files
/// stages hand each other (`records`), running tests in a worker (`testrun`) and the command
/// context (`context`).
const ADAPTERS: [&str; 14] = [
    "git",
    "source",
    "backend",
    "lm",
    "github",
    "console",
    "cli",
    "log",
    "interrupt",
    "script",
    "files",
    "records",
    "context",
    "testrun",
];
/// The modules that run the stages: the command line's dispatch, `run`, `campaign` and the
/// adaptive `budget` (rounds of gen and validate).
const ORCHESTRATORS: [&str; 4] = ["commands", "run", "campaign", "budget"];

/// Top-level module → the top-level modules it names (`crate::x`, `use crate::{x, y}`).
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in
        walkdir::WalkDir::new(&src).into_iter().flatten().filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
    {
        let relative = entry.path().strip_prefix(&src).unwrap().to_string_lossy().to_string();
        let module = relative.split('/').next().unwrap().trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let mut named = BTreeSet::new();
        for (at, _) in text.match_indices("crate::") {
            let rest = &text[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                named.extend(group.split(',').map(|p| p.trim().split("::").next().unwrap_or("").to_string()));
            } else {
                named.insert(rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect());
            }
        }
        named.retain(|n| !n.is_empty() && *n != module && n.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
        graph.entry(module).or_default().extend(named);
    }
    graph
}

#[test]
fn the_core_imports_only_the_core_and_adapters_import_no_stage() {
    let graph = imports();
    let mut wrong = Vec::new();
    for (module, uses) in &graph {
        for used in uses {
            let core = CORE.contains(&module.as_str());
            let adapter = ADAPTERS.contains(&module.as_str());
            let used_is_core = CORE.contains(&used.as_str());
            let used_is_adapter = ADAPTERS.contains(&used.as_str());
            if (core && !used_is_core) || (adapter && !used_is_core && !used_is_adapter) {
                wrong.push(format!("{module} -> {used}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports up the layers: {wrong:?}");
    assert!(
        graph["eval"].contains("testrun") && graph["backend"].contains("profile"),
        "the scan sees imports: {graph:?}"
    );
}

#[test]
fn no_modules_import_each_other() {
    let graph = imports();
    // A cycle: some module reachable from one it imports.
    let mut cycles = Vec::new();
    for (module, uses) in &graph {
        for start in uses {
            let mut seen = BTreeSet::new();
            let mut stack = vec![start.clone()];
            while let Some(next) = stack.pop() {
                if &next == module {
                    cycles.push(format!("{module} -> {start} -> … -> {module}"));
                    break;
                }
                if seen.insert(next.clone()) {
                    stack.extend(graph.get(&next).into_iter().flatten().cloned());
                }
            }
        }
    }
    assert!(cycles.is_empty(), "cycles: {cycles:#?}");
}

#[test]
fn no_stage_imports_another_stage() {
    let graph = imports();
    let is_stage = |m: &str| !CORE.contains(&m) && !ADAPTERS.contains(&m) && !ORCHESTRATORS.contains(&m);
    let mut wrong = Vec::new();
    for (module, uses) in &graph {
        if !is_stage(module) {
            continue;
        }
        wrong.extend(uses.iter().filter(|u| is_stage(u) && graph.contains_key(*u)).map(|u| format!("{module} -> {u}")));
    }
    assert!(wrong.is_empty(), "stages importing stages: {wrong:?}");
    assert!(graph["run"].contains("validate") && is_stage("gather"), "the scan sees stages: {graph:?}");
}
