//! The Rhai host: loading, metadata, errors with positions, hot reload and the script API.

use std::path::Path;
use std::sync::{Arc, Mutex};

use bugsmith::ast::SourceFile;
use bugsmith::patch::Edit;
use bugsmith::rng::Rng;
use bugsmith::script::data::Params;
use bugsmith::script::{Origin, Strategy, engine};

const SOURCE: &str = "def f(a, b):\n    x = a + b\n    if x > 1:\n        return x - 1\n    return x\n";

fn write(path: &Path, body: &str) {
    std::fs::write(path, format!("const EXPLANATION = \"e\";\nconst MIN_COMPLEXITY = 0;\n{body}")).unwrap();
}

fn load(dir: &Path, body: &str) -> Result<Strategy, String> {
    let path = dir.join("probe.rhai");
    write(&path, body);
    Strategy::load(Arc::new(engine()), Origin::File(path)).map_err(|e| e.to_string())
}

fn mutate(strategy: &Strategy) -> Result<Vec<Edit>, String> {
    let file = SourceFile::parse("m.py", SOURCE.into()).unwrap();
    let rng = Arc::new(Mutex::new(Rng::from_key(&["test"])));
    strategy.mutate(&file, 0, &strategy.params(&Params::default()), &rng).map_err(|e| e.to_string())
}

#[test]
fn scripts_see_roles_operators_and_tags_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let strategy = load(
        dir.path(),
        r#"fn mutate(entity, params, rng) {
    if !entity.has("binary_op") || !entity.has("has_if") || entity.kind != "function" { throw "tags"; }
    let add = entity.nodes("BinOp")[0];
    if add.left.text != "a" || add.right.text != "b" || add.op != "+" || add.role != "value" { throw "roles"; }
    let test = entity.nodes("If")[0].test;
    #{ start: test.ops[0].start, end: test.ops[0].end, text: ">=" }
}"#,
    )
    .unwrap();
    assert_eq!(mutate(&strategy).unwrap(), vec![Edit { start: 36, end: 37, text: ">=".into() }]);
}

#[test]
fn a_runtime_error_names_the_line_inside_the_helper_that_failed() {
    let dir = tempfile::tempdir().unwrap();
    let strategy = load(
        dir.path(),
        "fn helper(x) {\n    x.no_such_method()\n}\nfn mutate(entity, params, rng) {\n    helper(1)\n}\n",
    )
    .unwrap();
    let error = mutate(&strategy).unwrap_err();
    assert!(error.contains("probe.rhai:4:7: Function not found: no_such_method"), "{error}");
}

#[test]
fn a_script_without_mutate_or_explanation_does_not_load() {
    let dir = tempfile::tempdir().unwrap();
    assert!(load(dir.path(), "fn other() {}").unwrap_err().contains("must define `fn mutate(entity, params, rng)`"));
    let path = dir.path().join("bare.rhai");
    std::fs::write(&path, "fn mutate(entity, params, rng) { () }").unwrap();
    let error = Strategy::load(Arc::new(engine()), Origin::File(path)).map_err(|e| e.to_string()).unwrap_err();
    assert!(error.contains("must declare `const EXPLANATION"), "{error}");
}

#[test]
fn returning_something_that_is_not_edits_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let strategy = load(dir.path(), "fn mutate(entity, params, rng) { 42 }").unwrap();
    assert!(
        mutate(&strategy)
            .unwrap_err()
            .contains("mutate returned expected edits (an Edit, a map or an array of them), got i64")
    );
}

#[test]
fn an_unknown_condition_tag_is_a_load_error() {
    let dir = tempfile::tempdir().unwrap();
    let error =
        load(dir.path(), "const CONDITIONS = [\"has_loops\"];\nfn mutate(entity, params, rng) { () }").unwrap_err();
    assert!(error.contains("CONDITIONS: unknown tag `has_loops`"), "{error}");
}

#[test]
fn an_edited_script_is_reloaded_and_a_broken_edit_keeps_the_last_good_version() {
    let dir = tempfile::tempdir().unwrap();
    let strategy = load(dir.path(), "const LIKELIHOOD = 0.5;\nfn mutate(entity, params, rng) { () }").unwrap();
    assert_eq!(strategy.meta().likelihood, 0.5);
    let path = dir.path().join("probe.rhai");
    write(&path, "const LIKELIHOOD = 0.9;\nfn mutate(entity, params, rng) { () }");
    assert_eq!(strategy.refresh(), None);
    assert_eq!(strategy.meta().likelihood, 0.9);
    write(&path, "const LIKELIHOOD = 0.1;\nfn mutate(entity, params, rng) { let = }");
    let error = strategy.refresh().expect("the broken version is reported");
    assert_eq!((error.line, error.column), (4, 38));
    assert_eq!(strategy.meta().likelihood, 0.9);
}

#[test]
fn the_rng_is_shared_with_helper_functions() {
    let dir = tempfile::tempdir().unwrap();
    let strategy = load(
        dir.path(),
        "fn draw(rng) { rng.float() }\nfn mutate(entity, params, rng) {\n    let a = draw(rng);\n    let b = rng.float();\n    if a == b { throw \"the helper did not advance the stream\"; }\n    ()\n}",
    )
    .unwrap();
    assert_eq!(mutate(&strategy).unwrap(), vec![]);
}

#[test]
fn removing_every_statement_of_a_line_or_block_leaves_no_blank_line_and_keeps_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let strategy = load(dir.path(), "fn mutate(entity, params, rng) {\n    patch::remove_statements(entity.nodes(\"Assign\") + entity.nodes(\"AugAssign\"))\n}").unwrap();
    let text = "def packed(values):\n    a = 1; b = 2; c = 3\n\n    big = 10  # gone too\n    for v in values:\n        a += v; b -= v\n    return a\n";
    let file = SourceFile::parse("m.py", text.into()).unwrap();
    let rng = Arc::new(Mutex::new(Rng::from_key(&["test"])));
    let edits = strategy.mutate(&file, 0, &strategy.params(&Params::default()), &rng).unwrap();
    let mutated = bugsmith::patch::apply(text, &edits, (0, text.len() as u32)).unwrap();
    assert_eq!(mutated, "def packed(values):\n    for v in values:\n        pass\n    return a\n");
}

#[test]
fn runaway_recursion_is_stopped_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let strategy =
        load(dir.path(), "fn deeper(n) {\n    deeper(n + 1)\n}\nfn mutate(entity, params, rng) {\n    deeper(0)\n}\n")
            .unwrap();
    let error = mutate(&strategy).unwrap_err();
    assert!(error.starts_with(&format!("{}:", dir.path().join("probe.rhai").display())), "{error}");
    assert!(error.to_lowercase().contains("stack overflow"), "{error}");
}
