//! Per-test coverage of a repository's clean code, recorded with the baseline by bugsmith's
//! pytest plugin (`src/pytest_plugin.py`), and what it says about a candidate: which tests
//! execute the statements its patch changes. Pure: text in, values out.
//!
//! Selection is by test: the tests that executed a changed statement (in their own body, in a
//! fixture they use, or while their module was collected). A test that only reads state an
//! earlier test left behind (a cache the changed code filled) is not selected: the verify
//! sample is what catches a repository where that matters.
//!
//! A changed line maps to its innermost enclosing statement through the AST; the statement's
//! header (or, for a simple statement, every line of it) and the changed line itself are looked
//! up. Code that ran while a test module was collected counts for every test of that module.
//! Code outside any function body (module level, class bodies, decorators, default arguments),
//! and code that also ran outside tests and their modules' collection (plugins, conftest files),
//! runs for every test: such a change selects `all` — except a function removed whole (its
//! `def` ran at import, but only the tests that ran its body can notice it gone), a changed
//! constant default (likewise), definitions an insertion only moves (reordered methods), and
//! a class's bases changed, or a special method or a method of a class with bases removed (the
//! tests that ran any of the class's methods, when it has an `__init__` or `__new__` every
//! instance runs; only the callers when a base in the file has the method too). Blank lines
//! and comments between statements are not looked up. A selected
//! run in which a test module fails to import is repeated with the whole suite (`validate`).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

use serde::Deserialize;

use crate::ast::{NodeId, SourceFile};

/// Statement kinds, as `ast` names them.
const STATEMENTS: [&str; 24] = [
    "FunctionDef",
    "ClassDef",
    "Return",
    "Delete",
    "TypeAlias",
    "Assign",
    "AugAssign",
    "AnnAssign",
    "For",
    "While",
    "If",
    "With",
    "Match",
    "Raise",
    "Try",
    "Assert",
    "Import",
    "ImportFrom",
    "Global",
    "Nonlocal",
    "Expr",
    "Pass",
    "Break",
    "Continue",
];

/// The file the plugin writes.
#[derive(Debug, Deserialize)]
struct Recorded {
    /// Dynamic contexts: `""` (outside tests), test node ids, `fixture:<baseid>::<name>`,
    /// `collect:<module node id>` (while that module was collected).
    contexts: Vec<String>,
    /// Fixture context → node ids of the tests that use the fixture.
    #[serde(default)]
    fixtures: BTreeMap<String, Vec<String>>,
    /// Node id → the (classname, name, file) of its JUnit `testcase`.
    #[serde(default)]
    names: BTreeMap<String, (String, String, Option<String>)>,
    /// File → line → indices into `contexts`.
    files: BTreeMap<String, BTreeMap<String, Vec<usize>>>,
}

/// Who executed one line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct LineUse {
    /// Indices into [`TestCoverage::tests`].
    tests: BTreeSet<usize>,
    /// It also ran outside any test (import, collection).
    outside_tests: bool,
}

/// Which lines each test executed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestCoverage {
    /// Node ids of the tests (sorted).
    pub tests: Vec<String>,
    /// The id each has in the graded results (from its JUnit names; the node id otherwise).
    pub ids: Vec<String>,
    lines: BTreeMap<String, BTreeMap<u32, LineUse>>,
}

/// The coverage file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("per-test coverage: {0}")]
pub struct CoverageError(String);

/// What a candidate needs to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// No test executes what it changes: decided without a run.
    Uncovered,
    /// These tests (indices into [`TestCoverage::tests`]) execute it.
    Tests(BTreeSet<usize>),
    /// Every test may: why.
    All(String),
}

impl TestCoverage {
    /// Reads the plugin's JSON.
    pub fn parse(json: &str) -> Result<TestCoverage, CoverageError> {
        let recorded: Recorded = serde_json::from_str(json).map_err(|e| CoverageError(e.to_string()))?;
        let mut tests: BTreeSet<String> = recorded
            .contexts
            .iter()
            .filter(|c| !c.is_empty() && !c.starts_with("fixture:") && !c.starts_with("collect:"))
            .cloned()
            .collect();
        tests.extend(recorded.fixtures.values().flatten().cloned());
        tests.extend(recorded.names.keys().cloned());
        let tests: Vec<String> = tests.into_iter().collect();
        let ids = tests
            .iter()
            .map(|t| {
                recorded.names.get(t).map_or_else(
                    || t.clone(),
                    |(classname, name, file)| crate::grading::node_id(classname, name, file.as_deref()),
                )
            })
            .collect();
        let index: BTreeMap<&str, usize> = tests.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
        // Each context as the tests it stands for (`None`: outside tests).
        let users: Vec<Option<Vec<usize>>> = recorded
            .contexts
            .iter()
            .map(|c| {
                if c.is_empty() {
                    None
                } else if let Some(users) = recorded.fixtures.get(c) {
                    Some(users.iter().filter_map(|u| index.get(u.as_str()).copied()).collect())
                } else if let Some(module) = c.strip_prefix("collect:") {
                    // Collecting a module runs for every test in it.
                    let prefix = format!("{module}::");
                    Some(tests.iter().enumerate().filter(|(_, t)| t.starts_with(&prefix)).map(|(i, _)| i).collect())
                } else if c.starts_with("fixture:") {
                    // A fixture no selected test uses (set up for a deselected one): no test.
                    Some(Vec::new())
                } else {
                    Some(index.get(c.as_str()).copied().into_iter().collect())
                }
            })
            .collect();
        let mut lines: BTreeMap<String, BTreeMap<u32, LineUse>> = BTreeMap::new();
        for (file, by_line) in recorded.files {
            let file_lines = lines.entry(file).or_default();
            for (line, contexts) in by_line {
                let Ok(line) = line.parse::<u32>() else { continue };
                let entry = file_lines.entry(line).or_default();
                for context in contexts {
                    match users.get(context) {
                        Some(Some(tests)) => entry.tests.extend(tests.iter().copied()),
                        Some(None) => entry.outside_tests = true,
                        None => {}
                    }
                }
            }
        }
        Ok(TestCoverage { tests, ids, lines })
    }

    /// Whether some test executed a line in `from..=to` of `file` (imports do not count).
    pub fn covers_lines(&self, file: &str, from: u32, to: u32) -> bool {
        self.lines.get(file).is_some_and(|l| l.range(from..=to).any(|(_, u)| !u.tests.is_empty()))
    }

    /// The tests a patch needs. `source` gives a file's clean text (for the statement map).
    pub fn select(&self, patch: &str, source: impl Fn(&str) -> Option<String>) -> Selection {
        if patch.contains("--- /dev/null") || patch.contains("+++ /dev/null") {
            return Selection::All("the patch adds or deletes a file".into());
        }
        let mut tests = BTreeSet::new();
        for change in touched_lines(patch) {
            if !change.path.ends_with(".py") {
                return Selection::All(format!("{} is not Python source", change.path));
            }
            let Some(text) = source(&change.path) else {
                return Selection::All(format!("{} cannot be read", change.path));
            };
            let Ok(file) = SourceFile::parse(&change.path, text) else {
                return Selection::All(format!("{} does not parse", change.path));
            };
            let Some(covered) = self.lines.get(&change.path) else { continue };
            let removed_functions = wholly_removed_functions(&file, &change);
            let default_changes = constant_default_changes(&file, &change);
            let body_starts = insertions_at_body_start(&file, &change);
            for line in change.lines() {
                let Some(statement) = innermost_statement(&file, line) else { continue };
                // Blank lines and comments between statements run nothing.
                let text = line_text(&file, line).trim();
                if (text.is_empty() || text.starts_with('#'))
                    && !probe_lines(&file, statement, 0).contains(&(line as u32))
                {
                    continue;
                }
                // A function removed whole: its `def` ran at import, but only the tests that
                // called it (ran its body) can see it gone.
                if let Some(removed) = removed_functions.iter().find(|f| (f.from..=f.to).contains(&(line as u32))) {
                    if let Some(why) = &removed.unsafe_removal {
                        return Selection::All(format!("{}:{} {why}", change.path, removed.from));
                    }
                    if let Some(class) = removed.widen_to_class {
                        match class_users(&file, class, covered) {
                            Ok(users) => tests.extend(users),
                            Err(why) => return Selection::All(format!("{}:{} {why}", change.path, removed.from)),
                        }
                    }
                    for (probe, used) in covered.range(removed.from..=removed.to) {
                        if used.outside_tests && *probe >= removed.body {
                            return Selection::All(format!("{}:{probe} also runs outside tests", change.path));
                        }
                        tests.extend(used.tests.iter().copied());
                    }
                    continue;
                }
                // A constant default changed: made at import, seen only by calls (which run the
                // body). Code inserted at the start of a body: its `def` line is only a
                // neighbour, and every call runs the insertion.
                let body = default_changes
                    .iter()
                    .find(|d| d.header.contains(&(line as u32)))
                    .map(|d| d.body..=d.to)
                    .or_else(|| body_starts.get(&(line as u32)).cloned());
                if let Some(body) = body {
                    match users_of(covered, body) {
                        Ok(users) => tests.extend(users),
                        Err(probe) => {
                            return Selection::All(format!("{}:{probe} also runs outside tests", change.path));
                        }
                    }
                    continue;
                }
                // A class's header (its bases, keywords): the class object changes, which only
                // code using the class can tell.
                if let Some(class) = class_header_of(&file, statement, line as u32) {
                    match class_users(&file, class, covered) {
                        Ok(users) => tests.extend(users),
                        Err(why) => return Selection::All(format!("{}:{line} {why}", change.path)),
                    }
                    continue;
                }
                if !in_function_body(&file, statement) {
                    return Selection::All(format!("{}:{line} runs at import (outside any function)", change.path));
                }
                for probe in probe_lines(&file, statement, line as u32) {
                    if let Some(used) = covered.get(&probe) {
                        if used.outside_tests {
                            return Selection::All(format!("{}:{probe} also runs outside tests", change.path));
                        }
                        tests.extend(used.tests.iter().copied());
                    }
                }
            }
        }
        if tests.is_empty() {
            return Selection::Uncovered;
        }
        Selection::Tests(tests)
    }
}

/// The pre-image lines a patch touches, per file: removed lines, and on both sides of each
/// insertion (the line before may be one coverage never lists, such as a docstring) unless the
/// insertion only moves lines the patch removes elsewhere (reordered methods).
struct Touched {
    path: String,
    removed: BTreeSet<usize>,
    /// Removed runs of lines, as text.
    removed_runs: Vec<String>,
    /// Added runs of lines (inserted or replacing removed ones), as text.
    added_runs: Vec<String>,
    /// Insertions: the pre-image lines on each side, and the inserted text.
    insertions: Vec<(usize, usize, String)>,
    /// The file's hunks as the patch has them (`@@` lines included).
    hunks: Vec<String>,
}

impl Touched {
    fn lines(&self) -> BTreeSet<usize> {
        let mut lines = self.removed.clone();
        for (before, after, text) in &self.insertions {
            if !self.moves(text) {
                lines.extend([*before, *after]);
            }
        }
        lines
    }

    /// Whether inserted text only moves definitions the patch removes elsewhere (reordered
    /// methods): each of its `def`/`class` blocks is in some removed run. Statements moved
    /// inside a function change what runs where, so they are not moves.
    fn moves(&self, text: &str) -> bool {
        let blocks = definition_blocks(text);
        !blocks.is_empty()
            && blocks.iter().all(|block| self.removed_runs.iter().any(|run| run.contains(block.as_str())))
    }

    /// Whether some added run holds `text` (a removed definition the patch puts elsewhere).
    fn re_adds(&self, text: &str) -> bool {
        self.added_runs.iter().any(|run| run.contains(text))
    }
}

/// Inserted text as definitions (decorators, `def` or `class`, body), each without its
/// trailing blank lines; empty when some line at the outer indentation starts anything else.
fn definition_blocks(text: &str) -> Vec<String> {
    let indent = |line: &str| line.len() - line.trim_start().len();
    let outer = text.lines().filter(|l| !l.trim().is_empty()).map(indent).min().unwrap_or(0);
    let mut blocks: Vec<String> = Vec::new();
    let mut headed = false;
    for line in text.lines() {
        let code = line.trim();
        if !code.is_empty() && indent(line) == outer {
            let decorator = code.starts_with('@');
            let header = ["def ", "async def ", "class "].iter().any(|k| code.starts_with(k));
            if !decorator && !header {
                return Vec::new();
            }
            if blocks.is_empty() || headed {
                blocks.push(String::new());
            }
            headed = header;
        }
        if let Some(block) = blocks.last_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    for block in &mut blocks {
        let kept = block.trim_end().len();
        block.truncate(kept);
    }
    blocks
}

fn touched_lines(patch: &str) -> Vec<Touched> {
    let mut files: Vec<Touched> = Vec::new();
    let mut old_line = 0;
    let mut old_path: Option<String> = None;
    // The current run of removed lines, and of inserted lines not replacing any.
    let (mut removing, mut inserting, mut adding) = (None::<String>, None::<String>, None::<String>);
    let flush = |file: &mut Touched, removing: &mut Option<String>, inserting: &mut Option<String>, at: usize| {
        if let Some(run) = removing.take() {
            file.removed_runs.push(run);
        }
        if let Some(text) = inserting.take() {
            file.insertions.push((at.saturating_sub(1).max(1), at, text));
        }
    };
    for line in patch.lines() {
        if let Some(path) = line.strip_prefix("--- ") {
            old_path = path.strip_prefix("a/").map(str::to_string);
        } else if let Some(path) = line.strip_prefix("+++ ") {
            let path = old_path.take().or_else(|| path.strip_prefix("b/").map(str::to_string)).unwrap_or_default();
            files.push(Touched {
                path,
                removed: BTreeSet::new(),
                removed_runs: Vec::new(),
                added_runs: Vec::new(),
                insertions: Vec::new(),
                hunks: Vec::new(),
            });
        } else if let Some(file) = files.last_mut() {
            file.hunks.push(line.to_string());
            match (line.strip_prefix('+'), adding.as_mut()) {
                (Some(added), Some(run)) => {
                    run.push_str(added);
                    run.push('\n');
                }
                (Some(added), None) => adding = Some(format!("{added}\n")),
                (None, _) => file.added_runs.extend(adding.take()),
            }
            if let Some(rest) = line.strip_prefix("@@ -") {
                flush(file, &mut removing, &mut inserting, old_line);
                old_line = rest.split([',', ' ']).next().and_then(|n| n.parse::<usize>().ok()).unwrap_or(1);
                continue;
            }
            match line.as_bytes().first() {
                Some(b'-') => {
                    file.removed.insert(old_line);
                    old_line += 1;
                    let run = removing.get_or_insert_default();
                    run.push_str(&line[1..]);
                    run.push('\n');
                }
                // Lines added where others were removed replace them: the removed ones count.
                Some(b'+') if removing.is_none() => {
                    let text = inserting.get_or_insert_default();
                    text.push_str(&line[1..]);
                    text.push('\n');
                }
                Some(b'+') => {}
                Some(b' ') => {
                    flush(file, &mut removing, &mut inserting, old_line);
                    old_line += 1;
                }
                _ => {}
            }
        }
    }
    if let Some(file) = files.last_mut() {
        flush(file, &mut removing, &mut inserting, old_line);
        file.added_runs.extend(adding);
    }
    files
}

/// A function every line of which the patch removes.
struct RemovedFunction {
    /// Its first, first body and last pre-image lines.
    from: u32,
    body: u32,
    to: u32,
    /// Why only the tests that ran its body cannot tell it gone: a special function outside
    /// any class (a module's `__getattr__`). A function the patch only moves (reordered
    /// methods) needs no such care.
    unsafe_removal: Option<String>,
    /// The class of a method whose removal every user of the class may tell, not only the
    /// tests that ran its body (see [`class_users`]): a method of a class with bases (it may
    /// implement an abstract method: then no instance can be made) and a special method (it
    /// may implement a protocol of an abstract base the same way; a protocol's implicit calls
    /// still run its body) — unless a base in the file has it too ([`inherits_concrete`]).
    widen_to_class: Option<NodeId>,
}

fn wholly_removed_functions(file: &SourceFile, change: &Touched) -> Vec<RemovedFunction> {
    let tree = file.tree();
    let lines = file.lines();
    tree.subtree(0)
        .filter(|&id| tree.node(id).kind == "FunctionDef")
        .filter_map(|id| {
            let node = tree.node(id);
            let (from, to) = (lines.line(node.start), lines.line(node.end.saturating_sub(1).max(node.start)));
            let body = probe_lines(file, id, 0).into_iter().filter(|&l| l > 0).max()? + 1;
            if !(from..=to).all(|l| change.removed.contains(&l)) {
                return None;
            }
            let text = file.text().get(node.start as usize..node.end as usize).unwrap_or("").trim();
            let moved = change.re_adds(text);
            let name = tree.children_with_role(id, "name").next().map_or("", |n| file.node_text(n));
            let class = node.parent.filter(|&p| tree.node(p).kind == "ClassDef");
            let has_bases = class.is_some_and(|c| {
                tree.children_with_role(c, "arguments").next().is_some_and(|a| {
                    tree.children_with_role(a, "args").any(|b| file.node_text(b) != "object")
                        || tree.children_with_role(a, "keywords").next().is_some()
                })
            });
            let special = !moved && name.starts_with("__") && name.ends_with("__");
            let unsafe_removal = (special && class.is_none()).then(|| format!("removes the special function {name}"));
            let widen_to_class = class
                .filter(|_| (has_bases || special) && !moved)
                .filter(|&c| name == "__eq__" || !inherits_concrete(file, c, name));
            Some(RemovedFunction { from: from as u32, body, to: to as u32, unsafe_removal, widen_to_class })
        })
        .collect()
}

/// Whether `class` inherits a plain method `name` through a chain of single bases this file
/// defines: removing its own then only changes what the calls, which ran its body, run.
/// (`__eq__` is not asked: removing it also changes whether instances hash.)
fn inherits_concrete(file: &SourceFile, class: NodeId, name: &str) -> bool {
    let tree = file.tree();
    let name_of = |id: NodeId| tree.children_with_role(id, "name").next().map_or("", |n| file.node_text(n));
    let mut current = class;
    // A chain longer than the file's classes loops (`class A(A)` after another `A`).
    for _ in 0..tree.subtree(0).len() {
        let Some(arguments) = tree.children_with_role(current, "arguments").next() else { return false };
        let bases: Vec<NodeId> = tree.children_with_role(arguments, "args").collect();
        if bases.len() != 1
            || tree.node(bases[0]).kind != "Name"
            || tree.children_with_role(arguments, "keywords").next().is_some()
        {
            return false;
        }
        let base_name = file.node_text(bases[0]);
        let Some(base) = tree
            .children_with_role(0, "body")
            .filter(|&id| tree.node(id).kind == "ClassDef" && name_of(id) == base_name)
            .last()
        else {
            return false;
        };
        let own = tree
            .children_with_role(base, "body")
            .find(|&id| tree.node(id).kind == "FunctionDef" && name_of(id) == name);
        if let Some(method) = own {
            return !tree.children_with_role(method, "decorators").any(|d| file.node_text(d).contains("abstract"));
        }
        current = base;
    }
    false
}

/// A function whose definition the patch changes only in constant default values.
struct DefaultChange {
    /// Its `def` lines before the body (decorators excluded).
    header: RangeInclusive<u32>,
    /// Its first body and last lines.
    body: u32,
    to: u32,
}

/// Functions whose `def` the patch changes in constant defaults only (`retries=3` →
/// `retries=4`; numbers, strings, booleans, `None`, tuples of them): the value is made at
/// import, where it cannot fail or do anything, and only calls, which run the body, see it.
/// Found by comparing each changed `def` with its post-image, defaults masked.
fn constant_default_changes(file: &SourceFile, change: &Touched) -> Vec<DefaultChange> {
    let headers: Vec<(NodeId, u32, u32)> = function_defs(file)
        .into_iter()
        .filter_map(|id| {
            let (def_line, body_line) = def_and_body_lines(file, id)?;
            (def_line < body_line).then_some((id, def_line, body_line))
        })
        .collect();
    let lines = change.lines();
    let changed: Vec<usize> = headers
        .iter()
        .enumerate()
        .filter(|(_, (_, from, body))| lines.iter().any(|&l| (*from..*body).contains(&(l as u32))))
        .map(|(i, _)| i)
        .collect();
    if changed.is_empty() {
        return Vec::new();
    }
    let Some(after) = post_image(file.text(), &change.hunks).and_then(|text| SourceFile::parse(file.path(), text).ok())
    else {
        return Vec::new();
    };
    let after_headers: Vec<NodeId> = function_defs(&after)
        .into_iter()
        .filter(|&id| def_and_body_lines(&after, id).is_some_and(|(d, b)| d < b))
        .collect();
    if after_headers.len() != headers.len() {
        return Vec::new();
    }
    changed
        .into_iter()
        .filter(|&i| masked_header(file, headers[i].0) == masked_header(&after, after_headers[i]))
        .map(|i| {
            let (id, from, body) = headers[i];
            let to = last_line(file, id);
            DefaultChange { header: from..=body - 1, body, to }
        })
        .collect()
}

/// The class whose header (`class` keyword to body, decorators excluded) holds `line`, when
/// `statement` is that class.
fn class_header_of(file: &SourceFile, statement: NodeId, line: u32) -> Option<NodeId> {
    (file.tree().node(statement).kind == "ClassDef").then_some(())?;
    let (header, body) = def_and_body_lines(file, statement)?;
    (header..body).contains(&line).then_some(statement)
}

/// The tests that use a class as far as coverage can tell: those that ran any line of its own
/// methods' bodies. Only when the class defines `__init__` or `__new__`, which every instance
/// made of it runs — otherwise an instance used only through inherited methods runs none of
/// its lines: `Err` says why every test must run. A method body that also ran outside tests
/// (the class is used at import) is `Err` too.
fn class_users(file: &SourceFile, class: NodeId, covered: &BTreeMap<u32, LineUse>) -> Result<BTreeSet<usize>, String> {
    let tree = file.tree();
    let name = |id: NodeId| tree.children_with_role(id, "name").next().map_or("", |n| file.node_text(n));
    let methods: Vec<NodeId> =
        tree.children_with_role(class, "body").filter(|&id| tree.node(id).kind == "FunctionDef").collect();
    if !methods.iter().any(|&m| matches!(name(m), "__init__" | "__new__")) {
        return Err(format!("changes {}, whose instances need not run any of its lines", name(class)));
    }
    let mut users = BTreeSet::new();
    for method in methods {
        let Some((_, body)) = def_and_body_lines(file, method) else { continue };
        let to = last_line(file, method);
        let ran = users_of(covered, body..=to)
            .map_err(|probe| format!("changes {}, which runs at import (line {probe})", name(class)))?;
        users.extend(ran);
    }
    Ok(users)
}

/// The tests that ran any of `lines`; `Err` is a line that also ran outside tests.
fn users_of(covered: &BTreeMap<u32, LineUse>, lines: RangeInclusive<u32>) -> Result<BTreeSet<usize>, u32> {
    let mut users = BTreeSet::new();
    for (probe, used) in covered.range(lines) {
        if used.outside_tests {
            return Err(*probe);
        }
        users.extend(used.tests.iter().copied());
    }
    Ok(users)
}

/// The last line of a node.
fn last_line(file: &SourceFile, id: NodeId) -> u32 {
    let node = file.tree().node(id);
    file.lines().line(node.end.saturating_sub(1).max(node.start)) as u32
}

/// Insertions right between a `def`'s header and its body: the header line before each (a
/// neighbour the patch does not change), and the function's body lines.
fn insertions_at_body_start(file: &SourceFile, change: &Touched) -> BTreeMap<u32, RangeInclusive<u32>> {
    let mut found = BTreeMap::new();
    for (before, after, text) in &change.insertions {
        let before = *before as u32;
        if change.removed.contains(&(before as usize)) || change.moves(text) {
            continue;
        }
        let Some(function) = innermost_statement(file, before as usize) else { continue };
        if file.tree().node(function).kind != "FunctionDef" {
            continue;
        }
        let Some((header, body)) = def_and_body_lines(file, function) else { continue };
        if (header..body).contains(&before) && *after as u32 >= body {
            found.insert(before, body..=last_line(file, function));
        }
    }
    found
}

fn function_defs(file: &SourceFile) -> Vec<NodeId> {
    file.tree().subtree(0).filter(|&id| file.tree().node(id).kind == "FunctionDef").collect()
}

/// The lines of a function's `def` keyword (after its decorators) and of its first body statement.
fn def_and_body_lines(file: &SourceFile, id: NodeId) -> Option<(u32, u32)> {
    let tree = file.tree();
    let name = tree.children_with_role(id, "name").next()?;
    let body = tree.children_with_role(id, "body").next()?;
    Some((file.lines().line(tree.node(name).start) as u32, file.lines().line(tree.node(body).start) as u32))
}

/// A `def`'s text from its name to its body, constant defaults replaced by `_`.
fn masked_header(file: &SourceFile, id: NodeId) -> Option<String> {
    const CONSTANT: [&str; 10] =
        ["Number", "String", "StringPart", "Bytes", "BytesPart", "Boolean", "None", "Ellipsis", "UnaryOp", "Tuple"];
    let tree = file.tree();
    let start = tree.node(tree.children_with_role(id, "name").next()?).start as usize;
    let end = tree.node(tree.children_with_role(id, "body").next()?).start as usize;
    let mut masked = String::new();
    let mut at = start;
    for default in tree.subtree(id).filter(|&n| tree.node(n).role == "default_value") {
        let node = tree.node(default);
        let (from, to) = (node.start as usize, node.end as usize);
        if from < at || to > end || !tree.subtree(default).all(|n| CONSTANT.contains(&tree.node(n).kind)) {
            continue;
        }
        masked.push_str(file.text().get(at..from)?);
        masked.push('_');
        at = to;
    }
    masked.push_str(file.text().get(at..end)?);
    Some(masked.replace("\r\n", "\n"))
}

/// `text` with one file's hunks applied (`None` when they do not fit it).
fn post_image(text: &str, hunks: &[String]) -> Option<String> {
    let pre: Vec<&str> = text.lines().collect();
    let mut out: Vec<&str> = Vec::with_capacity(pre.len());
    let mut next = 0;
    for line in hunks {
        if let Some(rest) = line.strip_prefix("@@ -") {
            let start: usize = rest.split([',', ' ']).next()?.parse().ok()?;
            let upto = start.saturating_sub(1).max(next);
            out.extend(pre.get(next..upto)?);
            next = upto;
            continue;
        }
        match line.as_bytes().first() {
            Some(b' ') | Some(b'-') => {
                if pre.get(next)?.trim_end_matches('\r') != line[1..].trim_end_matches('\r') {
                    return None;
                }
                if line.starts_with(' ') {
                    out.push(pre[next]);
                }
                next += 1;
            }
            Some(b'+') => out.push(&line[1..]),
            _ => {}
        }
    }
    out.extend(pre.get(next..)?);
    let mut image = out.join("\n");
    image.push('\n');
    Some(image)
}

/// The text of a 1-based line.
fn line_text(file: &SourceFile, line: usize) -> &str {
    file.text().lines().nth(line.saturating_sub(1)).unwrap_or("")
}

/// The smallest statement whose lines hold `line`.
fn innermost_statement(file: &SourceFile, line: usize) -> Option<NodeId> {
    let tree = file.tree();
    let lines = file.lines();
    tree.subtree(0)
        .filter(|&id| STATEMENTS.contains(&tree.node(id).kind))
        .filter(|&id| {
            let node = tree.node(id);
            lines.line(node.start) <= line && line <= lines.line(node.end.saturating_sub(1).max(node.start))
        })
        .min_by_key(|&id| tree.node(id).end - tree.node(id).start)
}

/// Whether the statement sits in the body of some function (it runs when that function does).
fn in_function_body(file: &SourceFile, statement: NodeId) -> bool {
    let tree = file.tree();
    let mut child = statement;
    while let Some(parent) = tree.node(child).parent {
        if tree.node(parent).kind == "FunctionDef" {
            // The body, not the decorators, defaults or annotations (those run at definition).
            return tree.node(child).role == "body" || in_function_body(file, parent);
        }
        child = parent;
    }
    false
}

/// The lines coverage may list for a change at `line` in `statement`: the changed line, and
/// the statement's own lines up to its first nested statement (its header; all of it for a
/// simple statement).
fn probe_lines(file: &SourceFile, statement: NodeId, line: u32) -> Vec<u32> {
    let tree = file.tree();
    let lines = file.lines();
    let node = tree.node(statement);
    let first = lines.line(node.start) as u32;
    let nested = tree
        .subtree(statement)
        .skip(1)
        .filter(|&id| STATEMENTS.contains(&tree.node(id).kind))
        .map(|id| lines.line(tree.node(id).start) as u32)
        .min();
    let last = nested.map_or(last_line(file, statement), |n| n.saturating_sub(1).max(first));
    let mut probes: Vec<u32> = (first..=last).collect();
    probes.push(line);
    probes.sort_unstable();
    probes.dedup();
    probes
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "import os\n\n\ndef area(w, h):\n    if w < 0:\n        raise ValueError(\n            'negative')\n    else:\n        pass\n    return w * h\n\n\ndef unused():\n    return 1\n\n\nLIMIT = area(2, 3)\n\n\nclass Box:\n    size = 3\n\n    def volume(self, d=2):\n        return self.size * d\n";

    fn coverage() -> TestCoverage {
        // Lines as coverage.py lists them: `area` run by test 1 and at import (line 17 calls
        // it), `volume` only by test 2 through a fixture.
        TestCoverage::parse(
            r#"{"version": 1,
                "contexts": ["", "a.py::test_area", "fixture:b.py::box", "c.py::test_other"],
                "fixtures": {"fixture:b.py::box": ["b.py::test_volume"]},
                "files": {"m.py": {"1": [0], "4": [0], "5": [1], "6": [1], "10": [0, 1], "13": [0],
                                   "17": [0], "20": [0], "21": [0], "23": [0], "24": [2]}}}"#,
        )
        .unwrap()
    }

    fn patch(from: &str, to: &str) -> String {
        crate::patch::render_diff("m.py", SOURCE, &SOURCE.replacen(from, to, 1)).unwrap()
    }

    fn select(from: &str, to: &str) -> Selection {
        coverage().select(&patch(from, to), |p| (p == "m.py").then(|| SOURCE.to_string()))
    }

    fn names(selection: &Selection) -> Vec<String> {
        let cov = coverage();
        match selection {
            Selection::Tests(t) => t.iter().map(|&i| cov.tests[i].clone()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_change_in_a_body_selects_the_tests_that_ran_it() {
        assert_eq!(names(&select("if w < 0", "if w <= 0")), ["a.py::test_area"]);
        // A continuation line maps to its statement's first line.
        assert_eq!(names(&select("'negative'", "'neg'")), ["a.py::test_area"]);
    }

    #[test]
    fn an_else_line_is_looked_up_through_its_if() {
        assert_eq!(names(&select("    else:\n", "    elif w > 9:\n")), ["a.py::test_area"]);
        // Its body never ran: changing it breaks nothing.
        assert_eq!(select("        pass\n", "        return 0\n"), Selection::Uncovered);
    }

    #[test]
    fn only_the_tests_that_ran_the_change_run_not_the_rest_of_their_file() {
        let cov = TestCoverage::parse(
            r#"{"version": 1, "contexts": ["a.py::test_area"], "fixtures": {},
                "names": {"a.py::test_area": ["a", "test_area", "a.py"], "a.py::test_cached": ["a", "test_cached", "a.py"],
                          "b.py::test_b": ["b", "test_b", "b.py"]},
                "files": {"m.py": {"5": [0]}}}"#,
        )
        .unwrap();
        let Selection::Tests(tests) = cov.select(&patch("if w < 0", "if w <= 0"), |_| Some(SOURCE.to_string())) else {
            panic!()
        };
        let names: Vec<&str> = tests.iter().map(|&i| cov.tests[i].as_str()).collect();
        assert_eq!(names, ["a.py::test_area"]);
    }

    #[test]
    fn code_a_fixture_ran_selects_every_test_using_the_fixture() {
        assert_eq!(names(&select("self.size * d", "self.size + d")), ["b.py::test_volume"]);
    }

    #[test]
    fn code_no_test_ran_is_uncovered() {
        assert_eq!(select("return 1", "return 2"), Selection::Uncovered);
    }

    #[test]
    fn module_level_code_class_bodies_and_computed_defaults_select_all() {
        let cases = [
            ("LIMIT = area(2, 3)", "LIMIT = area(3, 3)"),
            ("size = 3", "size = 4"),
            ("d=2", "d=os.sep"),
            ("d=2):", "d=2) -> int:"),
        ];
        for (from, to) in cases {
            assert!(matches!(select(from, to), Selection::All(_)), "{from} -> {to}");
        }
    }

    #[test]
    fn a_changed_constant_default_selects_the_tests_that_ran_the_body() {
        for to in ["d=3", "d=-1", "d=None", "d='x'", "d=(1, 2)"] {
            assert_eq!(names(&select("d=2", to)), ["b.py::test_volume"], "{to}");
        }
    }

    #[test]
    fn a_changed_default_of_a_function_that_also_ran_at_import_selects_all() {
        let source = SOURCE.replace("def area(w, h):", "def area(w, h=1):");
        let patch = crate::patch::render_diff("m.py", &source, &source.replacen("h=1", "h=2", 1)).unwrap();
        let selection = coverage().select(&patch, |_| Some(source.clone()));
        assert!(matches!(&selection, Selection::All(why) if why.contains("outside tests")), "{selection:?}");
    }

    #[test]
    fn the_post_image_is_the_pre_image_with_the_hunks_applied() {
        let after = SOURCE.replacen("if w < 0", "if w <= 0", 1).replacen("return 1", "return 2", 1);
        let patch = crate::patch::render_diff("m.py", SOURCE, &after).unwrap();
        let hunks = &touched_lines(&patch)[0].hunks;
        assert_eq!(post_image(SOURCE, hunks).as_deref(), Some(after.as_str()));
        assert_eq!(post_image("other text\n", hunks), None, "hunks that do not fit");
    }

    #[test]
    fn function_code_that_also_ran_at_import_selects_all() {
        let selection = select("return w * h", "return w + h");
        assert!(matches!(&selection, Selection::All(why) if why.contains("outside tests")), "{selection:?}");
    }

    #[test]
    fn code_a_test_modules_collection_ran_selects_that_modules_tests() {
        let cov = TestCoverage::parse(
            r#"{"version": 1, "contexts": ["collect:t.py", "u.py::test_b"], "fixtures": {},
                "names": {"t.py::test_a": ["t", "test_a", "t.py"], "t.py::C::test_c": ["t.C", "test_c", "t.py"],
                          "u.py::test_b": ["u", "test_b", "u.py"]},
                "files": {"m.py": {"5": [0], "6": [1]}}}"#,
        )
        .unwrap();
        let selection = cov.select(&patch("if w < 0", "if w <= 0"), |_| Some(SOURCE.to_string()));
        let Selection::Tests(tests) = selection else { panic!("{selection:?}") };
        let names: Vec<&str> = tests.iter().map(|&i| cov.tests[i].as_str()).collect();
        assert_eq!(names, ["t.py::C::test_c", "t.py::test_a"]);
    }

    #[test]
    fn lines_count_as_covered_when_a_test_ran_them_not_an_import() {
        let cov = coverage();
        assert!(cov.covers_lines("m.py", 4, 10), "area's body ran in test_area");
        assert!(!cov.covers_lines("m.py", 13, 14), "unused ran only its def, at import");
        assert!(cov.covers_lines("m.py", 23, 24), "volume ran through a fixture");
        assert!(!cov.covers_lines("other.py", 1, 99));
    }

    #[test]
    fn an_insertion_is_looked_up_by_the_lines_on_both_sides_of_it() {
        // Inside the `if` body, between lines 5 and 6; the line before an insertion may be one
        // coverage never lists (a docstring), so the line after counts too.
        let inserted = SOURCE.replacen("        raise ValueError(", "        print(w)\n        raise ValueError(", 1);
        let patch = crate::patch::render_diff("m.py", SOURCE, &inserted).unwrap();
        assert_eq!(names(&coverage().select(&patch, |_| Some(SOURCE.to_string()))), ["a.py::test_area"]);
        // Right after a `def` line, which only neighbours it: every call runs the insertion,
        // so the tests that ran the body.
        let first = SOURCE.replacen("        return self.size", "        print(d)\n        return self.size", 1);
        let patch = crate::patch::render_diff("m.py", SOURCE, &first).unwrap();
        assert_eq!(names(&coverage().select(&patch, |_| Some(SOURCE.to_string()))), ["b.py::test_volume"]);
        // `area` also runs at import: every test.
        let first = SOURCE.replacen("    if w < 0:", "    print(w)\n    if w < 0:", 1);
        let patch = crate::patch::render_diff("m.py", SOURCE, &first).unwrap();
        let selection = coverage().select(&patch, |_| Some(SOURCE.to_string()));
        assert!(matches!(&selection, Selection::All(why) if why.contains("outside tests")), "{selection:?}");
    }

    /// A class whose two methods tests 1 and 2 run (its `def` lines at import).
    const CLASS: &str = "class Shape:\n    def area(self):\n        return 1\n\n    def perimeter(self):\n        return 2\n\n\ndef scale(x):\n    for _ in range(2):\n        x = x * 2\n\n    return x\n";

    fn class_coverage() -> TestCoverage {
        TestCoverage::parse(
            r#"{"version": 1, "contexts": ["", "t.py::test_area", "u.py::test_perimeter", "v.py::test_scale"],
                "files": {"s.py": {"1": [0], "2": [0], "3": [1], "5": [0], "6": [2], "9": [0],
                                   "10": [3], "11": [3], "13": [3]}}}"#,
        )
        .unwrap()
    }

    fn class_select(to: &str) -> Vec<String> {
        let cov = class_coverage();
        let patch = crate::patch::render_diff("s.py", CLASS, to).unwrap();
        match cov.select(&patch, |_| Some(CLASS.to_string())) {
            Selection::Tests(t) => t.iter().map(|&i| cov.tests[i].clone()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_method_removed_whole_selects_the_tests_that_ran_its_body() {
        let removed = CLASS.replacen("    def perimeter(self):\n        return 2\n\n", "", 1);
        assert_eq!(class_select(&removed), ["u.py::test_perimeter"]);
    }

    /// Two classes with bases, one with an `__init__` (tests 1 and 2 use it), one without.
    const BASED: &str = "class Cache(dict):\n    def __init__(self):\n        self.n = 0\n\n    def size(self):\n        return 1\n\n    def keep(self):\n        return 2\n\n\nclass Bare(dict):\n    def size(self):\n        return 1\n\n    def __len__(self):\n        return 0\n";

    fn based_select(from: &str, to: &str) -> Selection {
        let cov = TestCoverage::parse(
            r#"{"version": 1, "contexts": ["", "t.py::test_size", "u.py::test_new", "v.py::test_bare"],
                "files": {"s.py": {"1": [0], "2": [0], "3": [1, 2], "5": [0], "6": [1], "8": [0],
                                   "12": [0], "13": [0], "14": [3], "16": [0], "17": [3]}}}"#,
        )
        .unwrap();
        let patch = crate::patch::render_diff("s.py", BASED, &BASED.replacen(from, to, 1)).unwrap();
        match cov.select(&patch, |_| Some(BASED.to_string())) {
            Selection::Tests(t) => {
                Selection::Tests(t.into_iter().filter(|&i| cov.tests[i] != "v.py::test_bare").collect())
            }
            other => other,
        }
    }

    #[test]
    fn a_method_removed_from_a_class_with_bases_selects_every_test_that_used_the_class() {
        // `size` may implement an abstract method of the base: then no `Cache` can be made,
        // and every test that made one (and so ran `__init__`) can tell.
        let selection = based_select("    def size(self):\n        return 1\n\n    def keep", "    def keep");
        let Selection::Tests(tests) = selection else { panic!("{selection:?}") };
        assert_eq!(tests.len(), 2, "test_size and test_new");
    }

    #[test]
    fn a_changed_base_selects_every_test_that_used_the_class() {
        let selection = based_select("class Cache(dict):", "class Cache:");
        assert!(matches!(&selection, Selection::Tests(t) if t.len() == 2), "{selection:?}");
    }

    #[test]
    fn a_removed_special_method_selects_every_test_that_used_the_class() {
        // `__init__` itself: every test that made a `Cache` ran it.
        let selection = based_select("    def __init__(self):\n        self.n = 0\n\n", "");
        assert!(matches!(&selection, Selection::Tests(t) if t.len() == 2), "{selection:?}");
    }

    #[test]
    fn a_class_without_init_selects_all() {
        // Instances of `Bare` may be used through `dict`'s methods alone, running none of its lines.
        let selection = based_select("class Bare(dict):", "class Bare:");
        assert!(matches!(&selection, Selection::All(why) if why.contains("Bare")), "{selection:?}");
        let selection = based_select("    def size(self):\n        return 1\n\n    def __len__", "    def __len__");
        assert!(matches!(&selection, Selection::All(why) if why.contains("Bare")), "{selection:?}");
        let selection = based_select("    def __len__(self):\n        return 0\n", "");
        assert!(matches!(&selection, Selection::All(why) if why.contains("Bare")), "{selection:?}");
    }

    #[test]
    fn reordered_methods_select_the_tests_of_the_moved_ones() {
        let swapped = CLASS.replacen(
            "    def area(self):\n        return 1\n\n    def perimeter(self):\n        return 2\n",
            "    def perimeter(self):\n        return 2\n\n    def area(self):\n        return 1\n",
            1,
        );
        let selected = class_select(&swapped);
        assert!(!selected.is_empty() && selected.iter().all(|t| t != "v.py::test_scale"), "{selected:?}");
    }

    #[test]
    fn blank_lines_next_to_a_change_do_not_widen_it_to_all() {
        // A loop removed together with the blank line after it.
        let removed = CLASS.replacen("    for _ in range(2):\n        x = x * 2\n\n", "", 1);
        assert_eq!(class_select(&removed), ["v.py::test_scale"]);
        // A line moved after the `return`, before the blank line that ends the function.
        let moved = CLASS.replacen("        return 2\n", "        return 2\n        x = 1\n", 1);
        assert_eq!(class_select(&moved), ["u.py::test_perimeter"]);
    }

    #[test]
    fn methods_reordered_across_hunks_select_the_callers_of_the_moved_ones() {
        // Ten methods shuffled as a strategy does: one insertion holds methods that come from
        // different removed runs, next to a `def` line that ran at import.
        let methods: Vec<String> = (1..=10).map(|i| format!("    def m{i}(self):\n        return {i}\n")).collect();
        let class = |order: [usize; 10]| format!("class K:\n{}", order.map(|i| methods[i - 1].as_str()).join("\n"));
        let (before, after) = (class([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), class([1, 10, 9, 4, 2, 8, 5, 6, 3, 7]));
        let cov = TestCoverage::parse(
            r#"{"version": 1, "contexts": ["", "t.py::test_m2", "t.py::test_m4"],
                "files": {"s.py": {"1": [0], "5": [0], "6": [1], "11": [0], "12": [2], "14": [0]}}}"#,
        )
        .unwrap();
        let patch = crate::patch::render_diff("s.py", &before, &after).unwrap();
        let selection = cov.select(&patch, |_| Some(before.clone()));
        let Selection::Tests(tests) = &selection else { panic!("{selection:?}\n{patch}") };
        let names: Vec<&str> = tests.iter().map(|&i| cov.tests[i].as_str()).collect();
        assert_eq!(names, ["t.py::test_m2"], "{patch}");
    }

    #[test]
    fn a_statement_moved_inside_a_function_is_looked_up_where_it_lands() {
        // `x = x * 2` moves out of the loop to before the `return`: the `return` now runs
        // after it, so its users count too.
        let moved =
            CLASS.replacen("        x = x * 2\n\n    return x\n", "        pass\n\n    x = x * 2\n    return x\n", 1);
        let cov = TestCoverage::parse(
            r#"{"version": 1, "contexts": ["", "v.py::test_scale", "w.py::test_zero"],
                "files": {"s.py": {"1": [0], "2": [0], "5": [0], "9": [0], "10": [1], "11": [1], "13": [1, 2]}}}"#,
        )
        .unwrap();
        let patch = crate::patch::render_diff("s.py", CLASS, &moved).unwrap();
        let Selection::Tests(tests) = cov.select(&patch, |_| Some(CLASS.to_string())) else { panic!() };
        assert_eq!(tests.len(), 2, "{patch}");
    }

    #[test]
    fn a_method_removed_from_a_class_whose_base_in_the_file_has_it_selects_only_its_callers() {
        const CHAIN: &str = "class Base:\n    def size(self):\n        return 1\n\n\nclass Mid(Base):\n    pass\n\n\nclass Leaf(Mid):\n    def size(self):\n        return 2\n\n    def other(self):\n        return 3\n";
        let cov = TestCoverage::parse(
            r#"{"version": 1, "contexts": ["", "t.py::test_size", "u.py::test_other"],
                "files": {"s.py": {"1": [0], "2": [0], "3": [0], "6": [0], "10": [0], "11": [0], "12": [1],
                                   "14": [0], "15": [2]}}}"#,
        )
        .unwrap();
        let select = |text: &str| {
            let patch = crate::patch::render_diff("s.py", CHAIN, text).unwrap();
            cov.select(&patch, |_| Some(CHAIN.to_string()))
        };
        let removed = CHAIN.replacen("    def size(self):\n        return 2\n\n", "", 1);
        let Selection::Tests(tests) = select(&removed) else { panic!() };
        assert_eq!(tests.iter().map(|&i| cov.tests[i].as_str()).collect::<Vec<_>>(), ["t.py::test_size"]);
        // The base's own is abstract: removing the override makes `Leaf` abstract.
        let abstract_base = CHAIN.replacen("class Base:\n", "class Base:\n    @abstractmethod\n", 1);
        let removed = abstract_base.replacen("    def size(self):\n        return 2\n\n", "", 1);
        let patch = crate::patch::render_diff("s.py", &abstract_base, &removed).unwrap();
        let selection = cov.select(&patch, |_| Some(abstract_base.clone()));
        assert!(matches!(&selection, Selection::All(why) if why.contains("Leaf")), "{selection:?}");
    }

    #[test]
    fn a_changed_header_of_a_class_without_init_selects_all() {
        let cov = class_coverage();
        let patch =
            crate::patch::render_diff("s.py", CLASS, &CLASS.replacen("class Shape:", "class Shape(object):", 1))
                .unwrap();
        assert!(matches!(cov.select(&patch, |_| Some(CLASS.to_string())), Selection::All(_)));
    }

    #[test]
    fn a_patch_adding_a_file_selects_all() {
        let added =
            "diff --git a/n.py b/n.py\nnew file mode 100644\n--- /dev/null\n+++ b/n.py\n@@ -0,0 +1 @@\n+x = 1\n";
        assert!(matches!(coverage().select(added, |_| None), Selection::All(_)));
    }
}
