//! Names by scope, for strategies that swap one name for another: the names a function binds
//! before a position, and the attributes a class assigns. Pure: the tree and text in, names out.
//!
//! A function binds its parameters, assignment, loop, `with … as`, `except … as` and `:=`
//! targets (also inside tuple and list unpacking), imports, and the names of the functions and
//! classes it defines. Names bound only inside a nested function, lambda, class or
//! comprehension belong to that scope, and names declared `global` or `nonlocal` bind
//! elsewhere: neither counts. An assignment's targets are bound once the statement is done
//! (`x = x + 1` does not bind `x` before its own right-hand side); a loop's or `with`'s targets
//! are bound inside its body.

use std::collections::BTreeSet;

use super::{NodeId, SourceFile};

/// Kinds that open a scope of their own.
const SCOPES: [&str; 7] = ["FunctionDef", "Lambda", "ClassDef", "ListComp", "SetComp", "DictComp", "GeneratorExp"];

/// Names `function` binds before byte `offset`, in the order they are first bound.
pub fn bound_before(file: &SourceFile, function: NodeId, offset: u32) -> Vec<String> {
    let tree = file.tree();
    if tree.node(function).kind != "FunctionDef" {
        return Vec::new();
    }
    let elsewhere = declared_elsewhere(file, function);
    let mut bound: Vec<(u32, String)> = Vec::new();
    let mut add = |at: u32, name: &str| {
        if !elsewhere.contains(name) && !bound.iter().any(|(_, n)| n == name) {
            bound.push((at, name.to_string()));
        }
    };
    for id in own_nodes(file, function) {
        let node = tree.node(id);
        let text = file.node_text(id);
        match node.kind {
            // Parameters of this function (not of a nested lambda: own_nodes stops there).
            "Parameter" => {
                if let Some(name) = tree.children_with_role(id, "name").next() {
                    add(0, file.node_text(name));
                }
            }
            "Name" => {
                if let Some(at) = binds_at(file, id)
                    && at <= offset
                {
                    add(at, text);
                }
            }
            "Identifier" if node.role == "name" => {
                let parent = node.parent.map(|p| tree.node(p).kind).unwrap_or("");
                let bound_at = match parent {
                    // A nested def or class binds its name where it ends.
                    "FunctionDef" | "ClassDef" => node.parent.map(|p| tree.node(p).end),
                    "ExceptHandler" => Some(node.end),
                    _ => None,
                };
                if let Some(at) = bound_at.filter(|&at| at <= offset)
                    && node.parent != Some(function)
                {
                    add(at, text);
                }
            }
            "Alias" if node.end <= offset => {
                let name = text.rsplit_once(" as ").map_or_else(|| text.split('.').next().unwrap_or(text), |(_, a)| a);
                add(node.end, name.trim());
            }
            _ => {}
        }
    }
    bound.sort_by_key(|(at, _)| *at);
    bound.into_iter().map(|(_, n)| n).collect()
}

/// The attributes a class assigns: `self.x = …` (also `+=`, annotated, unpacked) in its
/// methods, where `self` is each method's first parameter, and names assigned in its body.
/// `node` is the class or anything inside it (a method).
pub fn class_attributes(file: &SourceFile, node: NodeId) -> Vec<String> {
    let tree = file.tree();
    let mut class = Some(node);
    while let Some(id) = class.filter(|&id| tree.node(id).kind != "ClassDef") {
        class = tree.node(id).parent;
    }
    let Some(class) = class else { return Vec::new() };
    let mut names = BTreeSet::new();
    for &member in &tree.node(class).children {
        let data = tree.node(member);
        if data.role != "body" {
            continue;
        }
        if data.kind == "FunctionDef" {
            let Some(receiver) = first_parameter(file, member) else { continue };
            for id in tree.subtree(member) {
                let attribute = tree.node(id);
                if attribute.kind != "Attribute" || is_target(file, id).is_none() {
                    continue;
                }
                let value = tree.children_with_role(id, "value").next();
                if value.is_some_and(|v| tree.node(v).kind == "Name" && file.node_text(v) == receiver)
                    && let Some(attr) = tree.children_with_role(id, "attr").next()
                {
                    names.insert(file.node_text(attr).to_string());
                }
            }
        } else if matches!(data.kind, "Assign" | "AnnAssign" | "AugAssign") {
            for id in tree.subtree(member) {
                if tree.node(id).kind == "Name" && is_target(file, id).is_some() {
                    names.insert(file.node_text(id).to_string());
                }
            }
        }
    }
    names.into_iter().collect()
}

/// The nodes of `function`'s own scope: its subtree without what nested scopes hold (their
/// own node is kept, for its name; a nested def's decorators and defaults belong to us but
/// bind nothing).
fn own_nodes(file: &SourceFile, function: NodeId) -> Vec<NodeId> {
    let tree = file.tree();
    let mut out = Vec::new();
    let mut stack: Vec<NodeId> = tree.node(function).children.iter().rev().copied().collect();
    while let Some(id) = stack.pop() {
        out.push(id);
        let node = tree.node(id);
        if SCOPES.contains(&node.kind) {
            // Only the name of a nested def or class binds here.
            out.extend(tree.children_with_role(id, "name"));
            continue;
        }
        stack.extend(node.children.iter().rev().copied());
    }
    out
}

/// Names the function declares `global` or `nonlocal`.
fn declared_elsewhere(file: &SourceFile, function: NodeId) -> BTreeSet<String> {
    let tree = file.tree();
    own_nodes(file, function)
        .into_iter()
        .filter(|&id| matches!(tree.node(id).kind, "Global" | "Nonlocal"))
        .flat_map(|id| {
            let text = file.node_text(id);
            let names = text.trim_start_matches("global").trim_start_matches("nonlocal");
            names.split(',').map(|n| n.trim().to_string()).collect::<Vec<_>>()
        })
        .collect()
}

/// The first parameter's name of a function (`self`, `cls`).
fn first_parameter(file: &SourceFile, function: NodeId) -> Option<String> {
    let tree = file.tree();
    let parameters = tree.children_with_role(function, "parameters").next()?;
    let first = tree.subtree(parameters).find(|&id| tree.node(id).kind == "Parameter")?;
    let name = tree.children_with_role(first, "name").next()?;
    Some(file.node_text(name).to_string())
}

/// When a node is an assignment target: the statement (or expression) that binds it.
fn is_target(file: &SourceFile, id: NodeId) -> Option<NodeId> {
    let tree = file.tree();
    let mut child = id;
    while let Some(parent) = tree.node(child).parent {
        let (kind, role) = (tree.node(parent).kind, tree.node(child).role);
        match (kind, role) {
            // Unpacking: the tuple, list or starred is the target.
            ("Tuple" | "List" | "Starred", _) => child = parent,
            ("Assign", "targets") | ("AugAssign" | "AnnAssign" | "For" | "NamedExpr" | "Comprehension", "target") => {
                return Some(parent);
            }
            ("WithItem", "optional_vars") => return Some(parent),
            _ => return None,
        }
    }
    None
}

/// Where a `Name` node is bound, when it is a target: the end of its assignment statement, or
/// the name itself for loop, `with` and `:=` targets.
fn binds_at(file: &SourceFile, id: NodeId) -> Option<u32> {
    let tree = file.tree();
    let binder = is_target(file, id)?;
    Some(match tree.node(binder).kind {
        "Assign" | "AugAssign" | "AnnAssign" => tree.node(binder).end,
        _ => tree.node(id).end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names bound before the first occurrence of `marker` in the function `name`.
    fn before(source: &str, name: &str, marker: &str) -> Vec<String> {
        let file = SourceFile::parse("m.py", source.to_string()).unwrap();
        let tree = file.tree();
        let function = tree
            .subtree(0)
            .find(|&id| {
                tree.node(id).kind == "FunctionDef"
                    && tree.children_with_role(id, "name").next().is_some_and(|n| file.node_text(n) == name)
            })
            .unwrap();
        bound_before(&file, function, source.find(marker).unwrap() as u32)
    }

    #[test]
    fn parameters_and_earlier_assignments_are_bound_later_ones_not() {
        let source = "def f(a, b=1, *args, c, **kw):\n    x = a\n    y, (z, *w) = x, (1, 2)\n    HERE\n    late = 3\n";
        assert_eq!(before(source, "f", "HERE"), ["a", "b", "args", "c", "kw", "x", "y", "z", "w"]);
    }

    #[test]
    fn an_assignment_binds_after_its_right_hand_side() {
        let source = "def f(a):\n    total = total_of(a) + MARK\n    return total\n";
        assert_eq!(before(source, "f", "MARK"), ["a"]);
        assert_eq!(before(source, "f", "return"), ["a", "total"]);
    }

    #[test]
    fn loop_with_except_walrus_and_import_targets_count() {
        let source = "def f(xs):\n    import os.path\n    from m import g as h\n    for i in xs:\n        with open(i) as fh:\n            try:\n                pass\n            except OSError as err:\n                if (n := len(xs)):\n                    HERE\n";
        assert_eq!(before(source, "f", "HERE"), ["xs", "os", "h", "i", "fh", "err", "n"]);
    }

    #[test]
    fn comprehensions_nested_functions_and_lambdas_keep_their_names() {
        let source = "def f(xs):\n    squares = [v * v for v in xs]\n    def inner(q):\n        r = q\n    key = lambda k: k\n    class Local:\n        attr = 1\n    HERE\n";
        assert_eq!(before(source, "f", "HERE"), ["xs", "squares", "inner", "key", "Local"]);
        assert_eq!(before(source, "inner", "r = q"), ["q"]);
    }

    #[test]
    fn global_and_nonlocal_names_bind_elsewhere() {
        let source = "def f():\n    global counter\n    counter = 1\n    local = 2\n    HERE\n";
        assert_eq!(before(source, "f", "HERE"), ["local"]);
        let source = "def outer():\n    n = 0\n    def inner():\n        nonlocal n\n        n = 1\n        m = 2\n        HERE\n";
        assert_eq!(before(source, "inner", "HERE"), ["m"]);
    }

    #[test]
    fn a_class_assigns_its_self_attributes_and_body_names() {
        let source = "class Box:\n    kind = 'box'\n    def __init__(this, w):\n        this.width = w\n        this.h, this.d = 1, 2\n        other.x = 3\n    def grow(self):\n        self.width += 1\n        self.count: int = 0\n        return self.area\n";
        let file = SourceFile::parse("m.py", source.to_string()).unwrap();
        let grow = file.tree().subtree(0).rfind(|&id| file.tree().node(id).kind == "FunctionDef").unwrap();
        assert_eq!(class_attributes(&file, grow), ["count", "d", "h", "kind", "width"]);
    }
}
