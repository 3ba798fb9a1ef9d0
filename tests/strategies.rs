//! Every procedural strategy on every fixture file: the diffs are snapshots, every mutated file
//! parses, every diff applies with libgit2, and nothing outside the mutated entity changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bugsmith::ast::SourceFile;
use bugsmith::bug_gen::{Outcome, Plan, mutate_entity};
use bugsmith::patch::line_bounds;
use bugsmith::script::catalog::{Catalog, origin_id};
use bugsmith::script::data::Params;
use bugsmith::script::{Origin, Strategy};

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifest().join("tests/fixtures/python"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .collect();
    files.sort();
    files
}

/// Applies a git-format patch to `old` with libgit2 and returns the new text.
fn apply_with_libgit2(name: &str, old: &str, diff: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), old).unwrap();
    bugsmith::git::snapshot(dir.path(), "fixture", false).unwrap();
    let repo = git2::Repository::open(dir.path()).unwrap();
    let parsed = git2::Diff::from_buffer(diff.as_bytes()).unwrap();
    repo.apply(&parsed, git2::ApplyLocation::WorkDir, None).unwrap();
    std::fs::read_to_string(dir.path().join(name)).unwrap()
}

/// Runs one strategy over every entity of a file it applies to (complexity floor lifted so
/// small fixtures exercise it) and checks each candidate. Returns the text to snapshot.
fn run(strategy: &Arc<Strategy>, path: &Path) -> String {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let text = std::fs::read_to_string(path).unwrap();
    let file = SourceFile::parse(&name, text.clone()).unwrap();
    let mut overrides = Params::default();
    overrides.set("min_complexity", 0);
    let plan = Plan { overrides, strategy: strategy.clone(), max_bugs: None, threads: None };
    let params = plan.params();
    let mut out = String::new();
    for (index, entity) in file.entities().iter().enumerate() {
        if !plan.strategy.applies_to(&file, index, &params).unwrap() {
            continue;
        }
        out.push_str(&format!("## {} (line {})\n", entity.qualified_name, entity.line_start));
        match mutate_entity(&plan, &params, &file, index, 24) {
            Outcome::Candidate(candidate) => {
                let new = apply_with_libgit2(&name, &text, &candidate.diff);
                assert!(bugsmith::ast::check_syntax(&new).is_ok(), "{name}: mutated file does not parse:\n{new}");
                let (start, end) = line_bounds(&text, file.lines(), entity.start, entity.end);
                let (start, end) = (start as usize, end as usize);
                assert_eq!(new[..start], text[..start], "{name}: text before the entity changed");
                assert!(new.ends_with(&text[end..]), "{name}: text after the entity changed");
                out.push_str(&candidate.diff);
            }
            Outcome::Nothing { unparsable } => out.push_str(&format!("no change ({unparsable} unparsable)\n")),
            Outcome::Error(problem) => panic!("{problem}"),
        }
    }
    out
}

/// SWE-smith's 13 registered Python modifiers plus `func_pm_flip_operators`.
const SWE_SMITH_MODIFIERS: [&str; 14] = [
    "func_pm_class_rm_base",
    "func_pm_class_rm_funcs",
    "func_pm_class_shuffle_funcs",
    "func_pm_ctrl_invert_if",
    "func_pm_ctrl_shuffle",
    "func_pm_op_change",
    "func_pm_flip_operators",
    "func_pm_op_swap",
    "func_pm_op_break_chains",
    "func_pm_op_change_const",
    "func_pm_remove_loop",
    "func_pm_remove_cond",
    "func_pm_remove_assign",
    "func_pm_remove_wrapper",
];

/// Runs one strategy over every fixture against its snapshots.
fn snapshots_of(id: &str) {
    let catalog = Catalog::locate(Some(&manifest().join("strategies")), false);
    let origin = catalog.resolve("procedural", id).unwrap();
    let strategy = Arc::new(Strategy::load(catalog.engine(), origin).unwrap());
    let mut changed_somewhere = false;
    for fixture in fixtures() {
        let snapshot = run(&strategy, &fixture);
        changed_somewhere |= snapshot.contains("diff --git");
        let stem = fixture.file_stem().unwrap().to_string_lossy().to_string();
        insta::assert_snapshot!(format!("{id}__{stem}"), snapshot);
    }
    assert!(changed_somewhere, "{id} changed no fixture");
}

/// One test per strategy, so a failing snapshot does not hide the others.
macro_rules! snapshot_tests {
    ($($id:ident),* $(,)?) => {
        mod each_strategy_matches_its_snapshots {
            $(
                #[test]
                fn $id() {
                    super::snapshots_of(stringify!($id));
                }
            )*
        }
        const SNAPSHOTTED: &[&str] = &[$(stringify!($id)),*];
    };
}

snapshot_tests!(
    func_pm_class_rm_base,
    func_pm_class_rm_funcs,
    func_pm_class_shuffle_funcs,
    func_pm_ctrl_invert_if,
    func_pm_ctrl_shuffle,
    func_pm_op_change,
    func_pm_flip_operators,
    func_pm_op_swap,
    func_pm_op_break_chains,
    func_pm_op_change_const,
    func_pm_remove_loop,
    func_pm_remove_cond,
    func_pm_remove_assign,
    func_pm_remove_wrapper,
    func_pm_var_misuse,
    func_pm_attr_misuse,
    func_pm_call_swap_args,
    func_pm_bound_off_by_one,
    func_pm_drop_return,
    func_pm_except_change,
    func_pm_default_change,
    func_pm_flip_bool_kwarg,
);

#[test]
fn every_procedural_strategy_has_its_snapshot_test_and_swe_smiths_are_all_there() {
    let catalog = Catalog::locate(Some(&manifest().join("strategies")), false);
    let ids: Vec<String> = catalog.origins("procedural").iter().map(origin_id).collect();
    for swe_smith in SWE_SMITH_MODIFIERS {
        assert!(ids.iter().any(|id| id == swe_smith), "{swe_smith} is missing");
    }
    let mut listed: Vec<&str> = SNAPSHOTTED.to_vec();
    listed.sort_unstable();
    let mut found: Vec<&str> = ids.iter().map(String::as_str).collect();
    found.sort_unstable();
    assert_eq!(listed, found, "add the new strategy to snapshot_tests!");
}

#[test]
fn the_builtin_copies_match_the_scripts_on_disk() {
    let on_disk = Catalog::locate(Some(&manifest().join("strategies")), true).origins("procedural");
    assert!(on_disk.iter().all(|o| matches!(o, Origin::File(_))), "--no-builtin: only files from the folders");
    let fallback = bugsmith::script::catalog::builtin_origins("procedural");
    assert_eq!(fallback.len(), on_disk.len());
    for (disk, built) in on_disk.iter().zip(&fallback) {
        let (Origin::File(path), Origin::Builtin(_, text)) = (disk, built) else { panic!("unexpected origins") };
        assert_eq!(std::fs::read_to_string(path).unwrap(), *text, "{} is stale in the binary", path.display());
    }
}

#[test]
fn the_example_strategy_in_the_readme_works() {
    let readme = std::fs::read_to_string(manifest().join("strategies/README.md")).unwrap();
    let start = readme.find("```rhai\n").expect("a rhai example") + "```rhai\n".len();
    let script = &readme[start..start + readme[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("func_pm_off_by_one.rhai");
    std::fs::write(&path, script).unwrap();
    let catalog = Catalog::locate(Some(&manifest().join("strategies")), false);
    let strategy = Arc::new(Strategy::load(catalog.engine(), Origin::File(path)).unwrap());
    let snapshot = run(&strategy, &manifest().join("tests/fixtures/python/shapes.py"));
    assert!(
        snapshot.contains("-        if factor <= 0 or value < 0:\n+        if factor < 0 or value <= 0:\n"),
        "{snapshot}"
    );
}

#[test]
fn every_recipe_in_recipes_loads_and_names_existing_strategies() {
    let catalog = Catalog::locate(Some(&manifest().join("strategies")), false);
    let mut seen = 0;
    for entry in std::fs::read_dir(manifest().join("recipes")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let recipe = bugsmith::recipe::Recipe::load(&path).unwrap();
        for strategy in &recipe.strategies {
            catalog.resolve_strategy(&strategy.id).unwrap();
        }
        for combine in &recipe.combine {
            catalog.resolve("combine", &combine.id).unwrap();
        }
        seen += 1;
    }
    assert!(seen >= 2);
}

#[test]
fn the_procedural_recipe_holds_exactly_swe_smiths_fourteen_modifiers() {
    let recipe = bugsmith::recipe::Recipe::load(&manifest().join("recipes/procedural.yaml")).unwrap();
    let mut ids: Vec<&str> = recipe.strategies.iter().map(|s| s.id.as_str()).collect();
    ids.sort_unstable();
    let swe_smith = [
        "func_pm_class_rm_base",
        "func_pm_class_rm_funcs",
        "func_pm_class_shuffle_funcs",
        "func_pm_ctrl_invert_if",
        "func_pm_ctrl_shuffle",
        "func_pm_flip_operators",
        "func_pm_op_break_chains",
        "func_pm_op_change",
        "func_pm_op_change_const",
        "func_pm_op_swap",
        "func_pm_remove_assign",
        "func_pm_remove_cond",
        "func_pm_remove_loop",
        "func_pm_remove_wrapper",
    ];
    assert_eq!(ids, swe_smith);
}
