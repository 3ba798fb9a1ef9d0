//! Combining validated bugs of a real sdist: combos are disjoint, merged patches apply, module
//! combos touch several files, conflicting patches do not combine, and the seed decides.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use common::{bugsmith_in, gathered, json, shared_cache};
use serde_json::Value;

/// Every combo written under `bug_gen`: (file, patch, metadata).
fn combos(logs: &Path, repo_name: &str) -> BTreeMap<String, (String, Value)> {
    walkdir::WalkDir::new(logs.join("bug_gen").join(repo_name))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("bug__combine_"))
        .map(|e| {
            let patch = std::fs::read_to_string(e.path()).unwrap();
            let meta_path = e.path().to_string_lossy().replace("bug__", "metadata__").replace(".diff", ".json");
            let meta: Value = serde_json::from_str(&std::fs::read_to_string(meta_path).unwrap()).unwrap();
            (e.path().strip_prefix(logs).unwrap().display().to_string(), (patch, meta))
        })
        .collect()
}

#[test]
fn combined_bugs_are_disjoint_apply_and_follow_the_seed() {
    let (dir, profile, repo_name) = gathered("pypi:tinydb==4.8.2", "3");
    let p = profile.to_str().unwrap();
    let logs = dir.path().join("logs");
    let recipe = dir.path().join("combine.yaml");
    std::fs::write(&recipe, "combine:\n  - id: combine_file\n    params: {num_patches: 2, max_combos: 100}\n  - id: combine_module\n    params: {num_patches: 2, depth: 2}\n").unwrap();
    let r = recipe.to_str().unwrap();
    let summary = json(&bugsmith_in(&["combine", p, "--recipe", r, "--json"], &shared_cache(), Some(dir.path())));
    assert!(summary[0]["combos"].as_u64().unwrap() >= 2, "{summary:#}");
    assert!(summary[1]["combos"].as_u64().unwrap() >= 2, "{summary:#}");
    let first = combos(&logs, &repo_name);

    let checkout = shared_cache().join("checkouts").join(&repo_name);
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, (patch, meta)) in &first {
        let file = dir.path().join("combo.diff");
        std::fs::write(&file, patch).unwrap();
        let check =
            Command::new("git").arg("-C").arg(&checkout).args(["apply", "--check"]).arg(&file).output().unwrap();
        assert!(check.status.success(), "{path}: {}", String::from_utf8_lossy(&check.stderr));
        let parts: Vec<String> =
            meta["patch_files"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(meta["num_patch_files"], 2);
        let group = meta["strategy"].as_str().unwrap().to_string() + ":" + path.rsplit_once('/').unwrap().0;
        for part in parts {
            assert!(used.entry(group.clone()).or_default().insert(part.clone()), "{part} used twice in {group}");
        }
        let files = bugsmith::patch::files_of(patch);
        if meta["strategy"] == "combine_module" {
            assert!(files.len() >= 2, "{path}: a module combo touches one file");
            assert!(path.contains("/combine_module/"));
        } else {
            assert_eq!(files.len(), 1, "{path}");
        }
    }

    // Same seed: nothing new. Another seed: other combinations.
    json(&bugsmith_in(&["combine", p, "--recipe", r, "--json"], &shared_cache(), Some(dir.path())));
    assert_eq!(combos(&logs, &repo_name).len(), first.len());
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let copy = Command::new("cp").arg("-r").arg(&logs).arg(other.join("logs")).status().unwrap();
    assert!(copy.success());
    for path in first.keys() {
        std::fs::remove_file(other.join("logs").join(path)).unwrap();
    }
    json(&bugsmith_in(&["combine", p, "--recipe", r, "--seed", "99", "--json"], &shared_cache(), Some(&other)));
    assert_ne!(combos(&other.join("logs"), &repo_name).keys().collect::<Vec<_>>(), first.keys().collect::<Vec<_>>());

    // The combinations are candidates: validation takes them like any other.
    let validated = json(&bugsmith_in(&["validate", p, "--json"], &shared_cache(), Some(dir.path())));
    let combined = &validated["strategies"]["combine_file"];
    assert!(combined["valid"].as_u64().unwrap_or(0) >= 1, "{validated:#}");
}

#[test]
fn patches_touching_the_same_lines_do_not_merge() {
    let dir = tempfile::tempdir().unwrap();
    let old: String = (0..20).map(|i| format!("v{i} = {i}\n")).collect();
    std::fs::write(dir.path().join("m.py"), &old).unwrap();
    bugsmith::git::snapshot(dir.path(), "base", false).unwrap();
    let change = |from: &str, to: &str| bugsmith::patch::render_diff("m.py", &old, &old.replace(from, to)).unwrap();
    let merged =
        bugsmith::git::merge_patches(dir.path(), &[change("v1 = 1", "v1 = 0"), change("v18 = 18", "v18 = 0")]).unwrap();
    assert!(merged.contains("-v1 = 1\n+v1 = 0\n") && merged.contains("-v18 = 18\n+v18 = 0\n"), "{merged}");
    let clash = bugsmith::git::merge_patches(dir.path(), &[change("v5 = 5", "v5 = 0"), change("v5 = 5", "v5 = 9")])
        .unwrap_err()
        .to_string();
    assert!(clash.contains("patch 2 does not apply on top of the others"), "{clash}");
}
