//! What scripts see: the `Entity`, `Node`, `Rng` and `Edit` types and the `ast::` and `patch::`
//! namespaces. Documented for authors in `strategies/README.md`; keep the two in step.

use std::sync::{Arc, Mutex};

use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString, Map, Module, Position};

use crate::ast::{self, Entity, EntityKind, LIST_ROLES, NodeId, SourceFile};
use crate::patch::{self, Edit};
use crate::rng::Rng;

type Fallible<T> = Result<T, Box<EvalAltResult>>;

fn fail<T>(message: impl Into<String>) -> Fallible<T> {
    Err(Box::new(EvalAltResult::ErrorRuntime(Dynamic::from(message.into()), Position::NONE)))
}

/// An entity as scripts see it.
#[derive(Clone)]
pub struct ScriptEntity {
    pub(crate) file: SourceFile,
    pub(crate) index: usize,
}

impl ScriptEntity {
    pub(crate) fn entity(&self) -> &Entity {
        &self.file.entities()[self.index]
    }

    fn node(&self) -> ScriptNode {
        ScriptNode { file: self.file.clone(), id: self.entity().node }
    }
}

/// A syntax node as scripts see it.
#[derive(Clone)]
pub struct ScriptNode {
    file: SourceFile,
    id: NodeId,
}

impl ScriptNode {
    fn data(&self) -> &ast::NodeData {
        self.file.tree().node(self.id)
    }

    fn wrap(&self, id: NodeId) -> Dynamic {
        Dynamic::from(ScriptNode { file: self.file.clone(), id })
    }

    fn line(&self, offset: u32) -> i64 {
        self.file.lines().line(offset) as i64
    }

    /// Nodes of `kind` (any kind when empty) in this subtree, in source (pre-)order.
    fn descendants(&self, kind: &str) -> Array {
        let tree = self.file.tree();
        tree.subtree(self.id).filter(|&i| kind.is_empty() || tree.node(i).kind == kind).map(|i| self.wrap(i)).collect()
    }

    /// Like [`Self::descendants`], but every node comes after all nodes inside it.
    fn descendants_bottom_up(&self, kind: &str) -> Array {
        let tree = self.file.tree();
        let mut ids: Vec<NodeId> =
            tree.subtree(self.id).filter(|&i| kind.is_empty() || tree.node(i).kind == kind).collect();
        ids.sort_by_key(|&i| (tree.node(i).subtree_end, std::cmp::Reverse(i)));
        ids.into_iter().map(|i| self.wrap(i)).collect()
    }

    fn role(&self, role: &str) -> Fallible<Dynamic> {
        if !ast::is_known_role(role) {
            let known = [ast::LIST_ROLES, ast::SINGLE_ROLES].concat().join(", ");
            return fail(format!("a Node has no field `{role}` (fields: {known})"));
        }
        let tree = self.file.tree();
        let mut children = tree.children_with_role(self.id, role);
        Ok(if LIST_ROLES.contains(&role) {
            Dynamic::from_array(children.map(|c| self.wrap(c)).collect())
        } else {
            children.next().map_or(Dynamic::UNIT, |c| self.wrap(c))
        })
    }

    /// The node's span widened over parentheses that wrap exactly this node (`(a)` in
    /// `(a) + b`), but never over its parent's own brackets (the `( )` of a call).
    fn outer_span(&self) -> (u32, u32) {
        let text = self.file.text().as_bytes();
        let (mut start, mut end) = (self.data().start as usize, self.data().end as usize);
        let (parent_start, parent_end) = match self.data().parent {
            Some(p) => {
                let p = self.file.tree().node(p);
                (p.start as usize, p.end as usize)
            }
            None => return (start as u32, end as u32),
        };
        loop {
            let before = text[..start].iter().rposition(|b| !b.is_ascii_whitespace());
            let after = text[end..].iter().position(|b| !b.is_ascii_whitespace()).map(|i| end + i);
            match (before, after) {
                (Some(b), Some(a))
                    if text[b] == b'('
                        && text[a] == b')'
                        && b > parent_start.saturating_sub(1)
                        && a < parent_end
                        && !(b == parent_start && a + 1 == parent_end) =>
                {
                    start = b;
                    end = a + 1;
                }
                _ => return (start as u32, end as u32),
            }
        }
    }

    fn ops(&self) -> Array {
        self.data()
            .ops
            .iter()
            .map(|op| {
                let mut map = Map::new();
                map.insert("text".into(), op.text.clone().into());
                map.insert("start".into(), i64::from(op.start).into());
                map.insert("end".into(), i64::from(op.end).into());
                Dynamic::from_map(map)
            })
            .collect()
    }
}

/// The random stream handed to a script; a shared handle, so helper functions advance it too.
#[derive(Clone)]
pub struct ScriptRng(pub(crate) Arc<Mutex<Rng>>);

impl ScriptRng {
    fn with<T>(&self, f: impl FnOnce(&mut Rng) -> T) -> T {
        let mut rng = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut rng)
    }
}

fn to_offset(value: i64) -> Fallible<u32> {
    u32::try_from(value).or_else(|_| fail(format!("offset {value} is out of range")))
}

fn node_from(value: &Dynamic, what: &str) -> Fallible<ScriptNode> {
    value.clone().try_cast::<ScriptNode>().map_or_else(|| fail(format!("{what} must be a Node")), Ok)
}

/// Nodes from a node or an array of nodes.
fn nodes_from(value: &Dynamic, what: &str) -> Fallible<Vec<ScriptNode>> {
    if value.is_array() {
        value.clone().into_array().unwrap_or_default().iter().map(|v| node_from(v, what)).collect()
    } else {
        Ok(vec![node_from(value, what)?])
    }
}

/// Converts what a script returned into edits: `()`, an `Edit`, a map `#{start, end, text}`,
/// or an array (nested arrays flattened) of those.
pub(crate) fn edits_from(value: Dynamic) -> Result<Vec<Edit>, String> {
    let mut out = Vec::new();
    collect_edits(value, &mut out)?;
    Ok(out)
}

fn collect_edits(value: Dynamic, out: &mut Vec<Edit>) -> Result<(), String> {
    if value.is_unit() {
        return Ok(());
    }
    if value.is_array() {
        for item in value.into_array().unwrap_or_default() {
            collect_edits(item, out)?;
        }
        return Ok(());
    }
    if value.is_map() {
        let map = value.cast::<Map>();
        let int = |key: &str| {
            map.get(key)
                .and_then(|v| v.as_int().ok())
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| format!("an edit map needs an integer `{key}`"))
        };
        let text =
            map.get("text").and_then(|v| v.clone().into_string().ok()).ok_or("an edit map needs a string `text`")?;
        out.push(Edit { start: int("start")?, end: int("end")?, text });
        return Ok(());
    }
    let type_name = value.type_name();
    match value.try_cast::<Edit>() {
        Some(edit) => {
            out.push(edit);
            Ok(())
        }
        None => Err(format!("expected edits (an Edit, a map or an array of them), got {type_name}")),
    }
}

fn edits_arg(edits: &Array) -> Fallible<Vec<Edit>> {
    edits_from(Dynamic::from_array(edits.clone())).or_else(fail)
}

fn to_array(edits: Vec<Edit>) -> Array {
    edits.into_iter().map(Dynamic::from).collect()
}

fn same_file(nodes: &[ScriptNode]) -> Fallible<SourceFile> {
    let first = nodes.first().map(|n| n.file.clone()).ok_or_else(|| "expected at least one node".to_string());
    let file = first.or_else(fail)?;
    if nodes.iter().any(|n| n.file.path() != file.path()) {
        return fail("all nodes must come from the same file");
    }
    Ok(file)
}

/// Registers the script API on an engine.
pub(crate) fn register(engine: &mut Engine) {
    register_entity(engine);
    register_node(engine);
    register_rng(engine);
    engine
        .register_type_with_name::<Edit>("Edit")
        .register_get("start", |e: &mut Edit| i64::from(e.start))
        .register_get("end", |e: &mut Edit| i64::from(e.end))
        .register_get("text", |e: &mut Edit| e.text.clone())
        .register_fn("to_string", |e: &mut Edit| format!("Edit({}..{} -> {:?})", e.start, e.end, e.text));
    engine.register_static_module("ast", ast_module().into());
    engine.register_static_module("patch", patch_module().into());
}

fn register_entity(engine: &mut Engine) {
    engine
        .register_type_with_name::<ScriptEntity>("Entity")
        .register_get("name", |e: &mut ScriptEntity| e.entity().name.clone())
        .register_get("qualified_name", |e: &mut ScriptEntity| e.entity().qualified_name.clone())
        .register_get("kind", |e: &mut ScriptEntity| match e.entity().kind {
            EntityKind::Function => "function".to_string(),
            EntityKind::Class => "class".to_string(),
        })
        .register_get("is_async", |e: &mut ScriptEntity| e.entity().is_async)
        .register_get("file", |e: &mut ScriptEntity| e.file.path().to_string())
        .register_get("start", |e: &mut ScriptEntity| i64::from(e.entity().start))
        .register_get("end", |e: &mut ScriptEntity| i64::from(e.entity().end))
        .register_get("line_start", |e: &mut ScriptEntity| e.entity().line_start as i64)
        .register_get("decorated_line_start", |e: &mut ScriptEntity| e.entity().decorated_line_start as i64)
        .register_get("line_end", |e: &mut ScriptEntity| e.entity().line_end as i64)
        .register_get("file_text", |e: &mut ScriptEntity| e.file.text().to_string())
        .register_get("src", |e: &mut ScriptEntity| {
            let entity = e.entity();
            e.file.text()[entity.start as usize..entity.end as usize].to_string()
        })
        .register_get("indent", |e: &mut ScriptEntity| e.entity().indent.clone())
        .register_get("indent_level", |e: &mut ScriptEntity| e.entity().indent_level as i64)
        .register_get("indent_size", |e: &mut ScriptEntity| e.entity().indent_size as i64)
        .register_get("complexity", |e: &mut ScriptEntity| e.entity().complexity)
        .register_get("signature", |e: &mut ScriptEntity| e.entity().signature.clone())
        .register_get("tags", |e: &mut ScriptEntity| -> Array {
            e.entity().tag_names().into_iter().map(Dynamic::from).collect()
        })
        .register_get("node", |e: &mut ScriptEntity| e.node())
        .register_fn("has", |e: &mut ScriptEntity, tag: &str| {
            let entity = e.entity();
            entity.has(tag) || entity.has(&format!("has_{tag}")) || entity.has(&format!("is_{tag}"))
        })
        .register_fn("names_before", |e: &mut ScriptEntity, offset: i64| -> Fallible<Array> {
            let offset = to_offset(offset)?;
            let names = ast::scope::bound_before(&e.file, e.entity().node, offset);
            Ok(names.into_iter().map(Dynamic::from).collect())
        })
        .register_fn("names_before", |e: &mut ScriptEntity, node: ScriptNode| -> Array {
            let names = ast::scope::bound_before(&e.file, e.entity().node, node.data().start);
            names.into_iter().map(Dynamic::from).collect()
        })
        .register_get("class_attributes", |e: &mut ScriptEntity| -> Array {
            ast::scope::class_attributes(&e.file, e.entity().node).into_iter().map(Dynamic::from).collect()
        })
        .register_fn("nodes", |e: &mut ScriptEntity| e.node().descendants(""))
        .register_fn("nodes", |e: &mut ScriptEntity, kind: &str| e.node().descendants(kind))
        .register_fn("nodes_bottom_up", |e: &mut ScriptEntity, kind: &str| e.node().descendants_bottom_up(kind))
        .register_fn("slice", |e: &mut ScriptEntity, start: i64, end: i64| -> Fallible<String> {
            let (s, t) = (to_offset(start)?, to_offset(end)?);
            e.file
                .text()
                .get(s as usize..t as usize)
                .map(str::to_string)
                .map_or_else(|| fail(format!("slice {start}..{end} is out of the file or splits a character")), Ok)
        })
        .register_fn("to_string", |e: &mut ScriptEntity| {
            format!(
                "{} {} ({}:{})",
                if e.entity().kind == EntityKind::Class { "class" } else { "def" },
                e.entity().qualified_name,
                e.file.path(),
                e.entity().line_start
            )
        });
}

fn register_node(engine: &mut Engine) {
    engine
        .register_type_with_name::<ScriptNode>("Node")
        .register_get("kind", |n: &mut ScriptNode| n.data().kind.to_string())
        .register_get("role", |n: &mut ScriptNode| n.data().role.to_string())
        .register_get("start", |n: &mut ScriptNode| i64::from(n.data().start))
        .register_get("end", |n: &mut ScriptNode| i64::from(n.data().end))
        .register_get("text", |n: &mut ScriptNode| n.file.node_text(n.id).to_string())
        .register_get("line", |n: &mut ScriptNode| n.line(n.data().start))
        .register_get("end_line", |n: &mut ScriptNode| n.line(n.data().end.saturating_sub(1).max(n.data().start)))
        .register_get("id", |n: &mut ScriptNode| i64::from(n.id))
        .register_get("literal", |n: &mut ScriptNode| {
            match ast::literal::literal(n.data().kind, n.file.node_text(n.id)) {
                Some(ast::literal::Literal::Int(v)) => Dynamic::from(v),
                Some(ast::literal::Literal::Float(v)) => Dynamic::from(v),
                Some(ast::literal::Literal::Bool(v)) => Dynamic::from(v),
                Some(ast::literal::Literal::Str(v)) => Dynamic::from(v),
                None => Dynamic::UNIT,
            }
        })
        .register_get("parent", |n: &mut ScriptNode| n.data().parent.map_or(Dynamic::UNIT, |p| n.wrap(p)))
        .register_get("children", |n: &mut ScriptNode| -> Array {
            n.data().children.iter().map(|&c| n.wrap(c)).collect()
        })
        .register_get("ops", |n: &mut ScriptNode| n.ops())
        .register_get("outer_start", |n: &mut ScriptNode| i64::from(n.outer_span().0))
        .register_get("outer_end", |n: &mut ScriptNode| i64::from(n.outer_span().1))
        .register_get("op", |n: &mut ScriptNode| n.data().ops.first().map_or(String::new(), |o| o.text.clone()))
        .register_get("is_async", |n: &mut ScriptNode| n.data().flag && n.data().kind != "ClassDef")
        .register_indexer_get(|n: &mut ScriptNode, role: &str| n.role(role))
        .register_fn("nodes", |n: &mut ScriptNode| n.descendants(""))
        .register_fn("nodes", |n: &mut ScriptNode, kind: &str| n.descendants(kind))
        .register_fn("nodes_bottom_up", |n: &mut ScriptNode, kind: &str| n.descendants_bottom_up(kind))
        .register_fn("contains", |n: &mut ScriptNode, other: ScriptNode| {
            n.file.path() == other.file.path() && n.file.tree().contains(n.id, other.id)
        })
        .register_fn("==", |a: &mut ScriptNode, b: ScriptNode| a.id == b.id && a.file.path() == b.file.path())
        .register_fn("!=", |a: &mut ScriptNode, b: ScriptNode| a.id != b.id || a.file.path() != b.file.path())
        .register_fn("to_string", |n: &mut ScriptNode| {
            format!("{}@{}:{}", n.data().kind, n.file.path(), n.line(n.data().start))
        });
}

fn register_rng(engine: &mut Engine) {
    engine
        .register_type_with_name::<ScriptRng>("Rng")
        .register_fn("float", |r: &mut ScriptRng| r.with(Rng::float))
        .register_fn("flip", |r: &mut ScriptRng, p: f64| r.with(|g| g.flip(p)))
        .register_fn("int", |r: &mut ScriptRng, low: i64, high: i64| -> Fallible<i64> {
            if high < low {
                return fail(format!("rng.int({low}, {high}): empty range"));
            }
            let span = i128::from(high) - i128::from(low) + 1;
            let offset = match u64::try_from(span) {
                Ok(span) => r.with(|g| g.below(span)),
                Err(_) => r.with(crate::rng::Rng::next_u64),
            };
            Ok((i128::from(low) + i128::from(offset)) as i64)
        })
        .register_fn("choice", |r: &mut ScriptRng, items: Array| -> Fallible<Dynamic> {
            if items.is_empty() {
                return fail("rng.choice of an empty array");
            }
            Ok(items[r.with(|g| g.below(items.len() as u64)) as usize].clone())
        })
        .register_fn("shuffled", |r: &mut ScriptRng, mut items: Array| {
            r.with(|g| g.shuffle(&mut items));
            items
        })
        .register_fn("permutation", |r: &mut ScriptRng, n: i64| -> Fallible<Array> {
            if !(0..=1_000_000).contains(&n) {
                return fail(format!("rng.permutation({n}): n must be between 0 and 1000000"));
            }
            let mut order: Vec<i64> = (0..n).collect();
            r.with(|g| g.shuffle(&mut order));
            Ok(order.into_iter().map(Dynamic::from).collect())
        });
}

fn ast_module() -> Module {
    let mut module = Module::new();
    module.set_native_fn("is_valid", |src: ImmutableString| Ok(ast::check_syntax(&src).is_ok()));
    module.set_native_fn("tags", || Ok(ast::TAGS.iter().map(|t| Dynamic::from(*t)).collect::<Array>()));
    module
}

/// The edit that replaces an entity with `code` (a model's answer, at any indentation):
/// re-indented to the entity's place; decorators are kept unless `code` brings its own.
fn replace_entity(entity: &ScriptEntity, code: &str) -> Edit {
    let e = entity.entity();
    let lines: Vec<&str> = code.trim_matches(['\n', '\r']).lines().collect();
    let common =
        lines.iter().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    let dedented: Vec<&str> = lines.iter().map(|l| l.get(common..).unwrap_or("").trim_end_matches('\r')).collect();
    let newline = if entity.file.text().contains("\r\n") { "\r\n" } else { "\n" };
    let mut text = String::new();
    for (i, line) in dedented.iter().enumerate() {
        if i > 0 {
            text.push_str(newline);
            if !line.is_empty() {
                text.push_str(&e.indent);
            }
        }
        text.push_str(line);
    }
    let keyword = entity.file.lines().line_start(e.line_start) + e.indent.len() as u32;
    let start = if text.starts_with('@') { e.start } else { keyword.max(e.start) };
    Edit { start, end: e.end, text }
}

/// The edit that empties a function's body (its docstring stays) for a model to fill in.
fn stub(entity: &ScriptEntity) -> Fallible<Edit> {
    match crate::patch::stub(&entity.file, entity.entity().node) {
        Some(edit) => Ok(edit),
        None => fail("patch::stub: the entity has no body"),
    }
}

fn patch_module() -> Module {
    let mut m = Module::new();
    m.set_native_fn("replace_entity", |entity: ScriptEntity, code: ImmutableString| Ok(replace_entity(&entity, &code)));
    m.set_native_fn("stub", |entity: ScriptEntity| stub(&entity));
    m.set_native_fn("diff", |path: ImmutableString, old: ImmutableString, new: ImmutableString| {
        Ok(patch::render_diff(&path, &old, &new).map_or(Dynamic::UNIT, Dynamic::from))
    });
    m.set_native_fn("files", |diff: ImmutableString| {
        Ok(patch::files_of(&diff).into_iter().map(Dynamic::from).collect::<Array>())
    });
    m.set_native_fn("apply_to_file", |entity: ScriptEntity, edits: Array| -> Fallible<String> {
        let edits = edits_arg(&edits)?;
        let text = entity.file.text();
        patch::apply(text, &edits, (0, text.len() as u32)).or_else(|e| fail(format!("patch::apply_to_file: {e}")))
    });
    m.set_native_fn("edit", |node: ScriptNode, text: ImmutableString| {
        Ok(Edit { start: node.data().start, end: node.data().end, text: text.to_string() })
    });
    m.set_native_fn("edit", |start: i64, end: i64, text: ImmutableString| {
        Ok(Edit { start: to_offset(start)?, end: to_offset(end)?, text: text.to_string() })
    });
    m.set_native_fn("insert", |at: i64, text: ImmutableString| {
        Ok(Edit { start: to_offset(at)?, end: to_offset(at)?, text: text.to_string() })
    });
    m.set_native_fn("delete", |node: ScriptNode| {
        Ok(Edit { start: node.data().start, end: node.data().end, text: String::new() })
    });
    m.set_native_fn("remove_statements", |nodes: Array| -> Fallible<Array> {
        let nodes = nodes_from(&Dynamic::from_array(nodes), "remove_statements: each item")?;
        if nodes.is_empty() {
            return Ok(Array::new());
        }
        let file = same_file(&nodes)?;
        let ids: Vec<NodeId> = nodes.iter().map(|n| n.id).collect();
        Ok(to_array(patch::remove_statements(&file, &ids)))
    });
    m.set_native_fn("remove_item", |node: ScriptNode| -> Fallible<Edit> {
        let tree = node.file.tree();
        let Some(parent) = node.data().parent else { return fail("remove_item: the node has no parent") };
        let siblings = &tree.node(parent).children;
        let at = siblings.iter().position(|&s| s == node.id).unwrap_or(0);
        let data = node.data();
        Ok(match (siblings.get(at + 1), at.checked_sub(1).map(|p| siblings[p])) {
            (Some(&next), _) => Edit { start: data.start, end: tree.node(next).start, text: String::new() },
            (None, Some(prev)) => Edit { start: tree.node(prev).end, end: data.end, text: String::new() },
            (None, None) => Edit { start: data.start, end: data.end, text: String::new() },
        })
    });
    m.set_native_fn("permute", |nodes: Array, order: Array| -> Fallible<Array> {
        let nodes = nodes_from(&Dynamic::from_array(nodes), "permute: each item")?;
        let file = same_file(&nodes)?;
        let order: Vec<usize> = order.iter().filter_map(|v| v.as_int().ok()).map(|v| v as usize).collect();
        let mut check = order.clone();
        check.sort_unstable();
        if check != (0..nodes.len()).collect::<Vec<_>>() {
            return fail("permute: the order must be a permutation of 0..nodes.len()");
        }
        let ids: Vec<NodeId> = nodes.iter().map(|n| n.id).collect();
        match patch::permute(&file, &ids, &order) {
            Some(edit) => Ok(vec![Dynamic::from(edit)]),
            None => fail("permute: the nodes must be distinct siblings in source order"),
        }
    });
    m.set_native_fn("swap", |a: Dynamic, b: Dynamic| -> Fallible<Array> {
        let (a, b) = (nodes_from(&a, "swap: first run")?, nodes_from(&b, "swap: second run")?);
        let file = same_file(&[a.clone(), b.clone()].concat())?;
        let (Some(a0), Some(a1), Some(b0), Some(b1)) = (a.first(), a.last(), b.first(), b.last()) else {
            return fail("swap: both runs need at least one node");
        };
        if a0.data().start > a1.data().start || b0.data().start > b1.data().start {
            return fail("swap: give each run in source order");
        }
        if a1.data().end > b0.data().start && b1.data().end > a0.data().start {
            return fail("swap: the two runs overlap");
        }
        Ok(to_array(patch::swap(&file, (a0.id, a1.id), (b0.id, b1.id))))
    });
    m.set_native_fn("text", |node: ScriptNode, edits: Array| -> Fallible<String> {
        let edits = edits_arg(&edits)?;
        patch::text_with(node.file.text(), node.data().start, node.data().end, &edits)
            .or_else(|e| fail(format!("patch::text: {e}")))
    });
    m.set_native_fn("text", |entity: ScriptEntity, start: i64, end: i64, edits: Array| -> Fallible<String> {
        let edits = edits_arg(&edits)?;
        let (start, end) = (to_offset(start)?, to_offset(end)?);
        if start > end || end as usize > entity.file.text().len() {
            return fail(format!("patch::text: bad span {start}..{end}"));
        }
        patch::text_with(entity.file.text(), start, end, &edits).or_else(|e| fail(format!("patch::text: {e}")))
    });
    m.set_native_fn("fold", |edits: Array, node: ScriptNode, text: ImmutableString| -> Fallible<Array> {
        let edits = edits_arg(&edits)?;
        Ok(to_array(patch::fold(&edits, node.data().start, node.data().end, text.to_string())))
    });
    m.set_native_fn("fold", |edits: Array, start: i64, end: i64, text: ImmutableString| -> Fallible<Array> {
        let edits = edits_arg(&edits)?;
        Ok(to_array(patch::fold(&edits, to_offset(start)?, to_offset(end)?, text.to_string())))
    });
    m.set_native_fn("overlaps", |edits: Array, node: ScriptNode| -> Fallible<bool> {
        let (s, e) = (node.data().start, node.data().end);
        Ok(edits_arg(&edits)?.iter().any(|x| x.start < e && s < x.end))
    });
    m
}
