//! The Python model: parse a file with ruff's parser, build its node tree, and extract entities
//! (functions, methods, nested and `async` functions, classes) with SWE-smith's tags and
//! complexity. This is the only module that names the parser crate. No I/O: it takes text.

pub mod literal;
pub mod scope;
mod tree;

use std::sync::Arc;

pub use tree::{LIST_ROLES, NodeData, NodeId, Operator, SINGLE_ROLES, Tree, is_known_role};

/// A parse failure, with a 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line of the error.
    pub line: usize,
    /// 1-based column (in characters) of the error.
    pub column: usize,
    /// The parser's message.
    pub message: String,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: syntax error: {}", self.line, self.column, self.message)
    }
}

/// Maps byte offsets to 1-based lines and columns.
#[derive(Clone, Debug)]
pub struct LineIndex {
    starts: Vec<u32>,
}

impl LineIndex {
    /// Indexes the line starts of `text` (`\n`, `\r\n` and lone `\r` all end a line).
    pub fn new(text: &str) -> LineIndex {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => starts.push(i as u32 + 1),
                b'\r' if bytes.get(i + 1) != Some(&b'\n') => starts.push(i as u32 + 1),
                _ => {}
            }
            i += 1;
        }
        LineIndex { starts }
    }

    /// 1-based line of a byte offset.
    pub fn line(&self, offset: u32) -> usize {
        self.starts.partition_point(|&s| s <= offset)
    }

    /// Byte offset where a 1-based line starts.
    pub fn line_start(&self, line: usize) -> u32 {
        self.starts[line.saturating_sub(1).min(self.starts.len() - 1)]
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_column(&self, text: &str, offset: u32) -> (usize, usize) {
        let line = self.line(offset);
        let start = self.line_start(line) as usize;
        let end = (offset as usize).min(text.len());
        let column = text.get(start..end).map_or(end - start, |s| s.chars().count()) + 1;
        (line, column)
    }
}

/// Checks that `text` is valid Python; the first error otherwise.
pub fn check_syntax(text: &str) -> Result<(), SyntaxError> {
    ruff_python_parser::parse_module(text).map(|_| ()).map_err(|e| syntax_error(text, &e))
}

/// Checks that a replaced statement still parses: `region` is whole lines of a file holding
/// one or more complete statements indented by `indent`. The region is parsed on its own,
/// dedented, which is much cheaper than the whole file; when that fails (a dedent can trip on an
/// unusually indented string or continuation line), `whole_file` decides.
pub fn check_region_syntax(region: &str, indent: &str, whole_file: impl FnOnce() -> String) -> bool {
    // A first line that lost its indentation parses alone but not in place.
    let first = region.trim_start_matches(['\n', '\r']);
    if !first.starts_with(indent) || first[indent.len()..].starts_with([' ', '\t']) {
        return check_syntax(&whole_file()).is_ok();
    }
    let dedented: String = if indent.is_empty() {
        region.to_string()
    } else {
        region.split_inclusive('\n').map(|line| line.strip_prefix(indent).unwrap_or(line)).collect()
    };
    ruff_python_parser::parse_module(&dedented).is_ok() || check_syntax(&whole_file()).is_ok()
}

fn syntax_error(text: &str, error: &ruff_python_parser::ParseError) -> SyntaxError {
    let (line, column) = LineIndex::new(text).line_column(text, error.location.start().to_u32());
    SyntaxError { line, column, message: error.error.to_string() }
}

/// SWE-smith's code property tags, in its order.
pub const TAGS: [&str; 23] = [
    "is_function",
    "is_class",
    "has_exception",
    "has_if",
    "has_if_else",
    "has_loop",
    "has_switch",
    "has_arithmetic",
    "has_assignment",
    "has_decorator",
    "has_function_call",
    "has_import",
    "has_lambda",
    "has_list_comprehension",
    "has_list_indexing",
    "has_off_by_one",
    "has_parent",
    "has_return",
    "has_wrapper",
    "has_binary_op",
    "has_bool_op",
    "has_ternary",
    "has_unary_op",
];

/// Bit of a tag in [`Entity::tags`], or `None` for an unknown tag name.
pub fn tag_bit(name: &str) -> Option<u32> {
    TAGS.iter().position(|t| *t == name).map(|i| 1 << i)
}

fn bit(name: &str) -> u32 {
    tag_bit(name).unwrap_or(0)
}

/// Whether an entity is a function (any `def`, `async` included) or a class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntityKind {
    /// A `def` or `async def`, at any depth.
    Function,
    /// A `class`, at any depth.
    Class,
}

/// A function or class of a file.
#[derive(Clone, Debug)]
pub struct Entity {
    /// The entity's node in the file's tree.
    pub node: NodeId,
    /// Unqualified name.
    pub name: String,
    /// Dotted path of enclosing classes and functions plus the name (`Outer.method`).
    pub qualified_name: String,
    /// Function or class.
    pub kind: EntityKind,
    /// `async def`.
    pub is_async: bool,
    /// Byte span of the whole statement, decorators included.
    pub start: u32,
    /// Byte offset just past the statement.
    pub end: u32,
    /// 1-based line of the `def`/`class` keyword (SWE-smith's `line_start`: decorators excluded).
    pub line_start: usize,
    /// 1-based line of the first decorator, or `line_start` when there is none.
    pub decorated_line_start: usize,
    /// 1-based last line (inclusive).
    pub line_end: usize,
    /// The whitespace before the first line of the statement.
    pub indent: String,
    /// SWE-smith's `indent_size` (4, or the tab-expanded width when the file uses tabs).
    pub indent_size: usize,
    /// SWE-smith's `indent_level`.
    pub indent_level: usize,
    /// Tag bits, see [`TAGS`].
    pub tags: u32,
    /// SWE-smith's complexity.
    pub complexity: i64,
    /// SWE-smith's signature: `def name(positional args)` or `class Name:`.
    pub signature: String,
}

impl Entity {
    /// Whether the entity has a tag (`has_binary_op`, `is_class`, …).
    pub fn has(&self, tag: &str) -> bool {
        tag_bit(tag).is_some_and(|b| self.tags & b != 0)
    }

    /// Names of the entity's tags, in [`TAGS`] order.
    pub fn tag_names(&self) -> Vec<&'static str> {
        TAGS.iter().copied().filter(|t| self.has(t)).collect()
    }
}

/// A parsed Python file: its text, node tree and entities. Cheap to share (`Arc` inside).
#[derive(Clone, Debug)]
pub struct SourceFile {
    inner: Arc<SourceInner>,
}

#[derive(Debug)]
struct SourceInner {
    path: String,
    text: String,
    lines: LineIndex,
    tree: Tree,
    entities: Vec<Entity>,
}

/// Largest source file parsed, in bytes: with [`PARSE_STACK`] it bounds how deep any tree can
/// nest (a longer file is a reported problem, not a crash).
pub const MAX_SOURCE_BYTES: usize = 1 << 20;

/// Stack of the threads that parse, walk and drop syntax trees (recursive in ruff's parser);
/// reserved, not committed, memory.
const PARSE_STACK: usize = 1 << 30;

thread_local! {
    /// This thread was started with [`PARSE_STACK`] (see [`deep_stack_pool`]): parse in place.
    static DEEP_STACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A rayon pool whose threads have stacks deep enough to parse in place (no thread per file).
pub fn deep_stack_pool(threads: Option<usize>) -> rayon::ThreadPoolBuilder {
    let mut builder =
        rayon::ThreadPoolBuilder::new().stack_size(PARSE_STACK).start_handler(|_| DEEP_STACK.with(|d| d.set(true)));
    if let Some(n) = threads {
        builder = builder.num_threads(n.max(1));
    }
    builder
}

impl SourceFile {
    /// Parses `text` (the file at repository-relative `path`) on a thread with a deep stack, so
    /// no nesting a file under [`MAX_SOURCE_BYTES`] can hold overflows it.
    pub fn parse(path: &str, text: String) -> Result<SourceFile, SyntaxError> {
        if text.len() > MAX_SOURCE_BYTES {
            return Err(SyntaxError {
                line: 1,
                column: 1,
                message: format!(
                    "the file has {} bytes, over the {} MiB limit for a source file",
                    text.len(),
                    MAX_SOURCE_BYTES >> 20
                ),
            });
        }
        if DEEP_STACK.with(std::cell::Cell::get) {
            return parse_here(path, text);
        }
        std::thread::scope(|scope| {
            match std::thread::Builder::new().stack_size(PARSE_STACK).spawn_scoped(scope, || parse_here(path, text)) {
                Ok(thread) => thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(e) => {
                    Err(SyntaxError { line: 1, column: 1, message: format!("cannot start a parser thread: {e}") })
                }
            }
        })
    }
}

/// [`SourceFile::parse`] on the current thread (ruff's tree is built, walked and dropped here).
fn parse_here(path: &str, text: String) -> Result<SourceFile, SyntaxError> {
    {
        let parsed = ruff_python_parser::parse_module(&text).map_err(|e| syntax_error(&text, &e))?;
        let tree = Tree::build(parsed.syntax(), parsed.tokens(), &text);
        let lines = LineIndex::new(&text);
        let entities = extract_entities(&tree, &text, &lines);
        Ok(SourceFile { inner: Arc::new(SourceInner { path: path.to_string(), text, lines, tree, entities }) })
    }
}

impl SourceFile {
    /// Repository-relative path with forward slashes.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The file's text.
    pub fn text(&self) -> &str {
        &self.inner.text
    }

    /// Line index of the text.
    pub fn lines(&self) -> &LineIndex {
        &self.inner.lines
    }

    /// The node tree.
    pub fn tree(&self) -> &Tree {
        &self.inner.tree
    }

    /// Entities in source order (an outer entity before the ones nested in it).
    pub fn entities(&self) -> &[Entity] {
        &self.inner.entities
    }

    /// Source text of a node.
    pub fn node_text(&self, id: NodeId) -> &str {
        let n = self.tree().node(id);
        &self.text()[n.start as usize..n.end as usize]
    }
}

fn extract_entities(tree: &Tree, text: &str, lines: &LineIndex) -> Vec<Entity> {
    let uses_tabs = text.contains('\t');
    let mut entities = Vec::new();
    for (id, node) in tree.nodes.iter().enumerate() {
        let id = id as NodeId;
        let kind = match node.kind {
            "FunctionDef" => EntityKind::Function,
            "ClassDef" => EntityKind::Class,
            _ => continue,
        };
        let Some(name_id) = tree.children_with_role(id, "name").next() else { continue };
        let name_node = tree.node(name_id);
        let name = text[name_node.start as usize..name_node.end as usize].to_string();
        let first_line = lines.line(node.start);
        let keyword_line = match tree.children_with_role(id, "decorators").last() {
            Some(last) => next_code_line(text, lines, tree.node(last).end),
            None => first_line,
        };
        let line_text = &text[lines.line_start(first_line) as usize..node.start as usize];
        let indent: String = line_text.chars().take_while(|c| c.is_whitespace()).collect();
        let keyword_indent_width = expand_tabs_width(&text[lines.line_start(keyword_line) as usize..]);
        let indent_size = if uses_tabs && keyword_indent_width > 0 { keyword_indent_width } else { 4 };
        let (tags, complexity) = analyze(tree, id);
        entities.push(Entity {
            node: id,
            qualified_name: qualified_name(tree, text, id, &name),
            signature: signature(tree, text, id, kind, &name),
            name,
            kind,
            is_async: node.flag && kind == EntityKind::Function,
            start: node.start,
            end: node.end,
            line_start: keyword_line,
            decorated_line_start: first_line,
            line_end: lines.line(node.end.saturating_sub(1).max(node.start)),
            indent_level: keyword_indent_width / indent_size,
            indent,
            indent_size,
            tags,
            complexity,
        });
    }
    entities
}

/// Width of the leading whitespace of a line, tabs expanded to multiples of 8.
fn expand_tabs_width(line: &str) -> usize {
    let mut width = 0;
    for c in line.chars() {
        match c {
            ' ' => width += 1,
            '\t' => width = (width / 8 + 1) * 8,
            _ => break,
        }
    }
    width
}

/// The first line at or after `offset` that holds code (skips the rest of a decorator's line).
fn next_code_line(text: &str, lines: &LineIndex, offset: u32) -> usize {
    let mut line = lines.line(offset) + 1;
    loop {
        let start = lines.line_start(line) as usize;
        let rest = &text[start.min(text.len())..];
        let trimmed = rest.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() || !(trimmed.starts_with('#') || trimmed.starts_with(['\n', '\r'])) {
            return line;
        }
        line += 1;
    }
}

fn qualified_name(tree: &Tree, text: &str, id: NodeId, name: &str) -> String {
    let mut parts = vec![name.to_string()];
    let mut current = tree.node(id).parent;
    while let Some(p) = current {
        let node = tree.node(p);
        if matches!(node.kind, "FunctionDef" | "ClassDef")
            && let Some(n) = tree.children_with_role(p, "name").next()
        {
            let n = tree.node(n);
            parts.push(text[n.start as usize..n.end as usize].to_string());
        }
        current = node.parent;
    }
    parts.reverse();
    parts.join(".")
}

/// SWE-smith's signature: a class is `class Name:`; a function keeps only its plain positional
/// parameters (annotations kept; defaults, `*args`, keyword-only and `**kw` dropped).
fn signature(tree: &Tree, text: &str, id: NodeId, kind: EntityKind, name: &str) -> String {
    if kind == EntityKind::Class {
        return format!("class {name}:");
    }
    let slice = |n: NodeId| {
        let n = tree.node(n);
        &text[n.start as usize..n.end as usize]
    };
    let mut params = Vec::new();
    if let Some(parameters) = tree.children_with_role(id, "parameters").next() {
        for with_default in tree.children_with_role(parameters, "args") {
            let Some(param) = tree.node(with_default).children.first().copied() else { continue };
            let pname = tree.children_with_role(param, "name").next().map_or("", slice);
            let annotation = tree.children_with_role(param, "annotation").next();
            params.push(match annotation {
                Some(a) => format!("{pname}: {}", slice(a)),
                None => pname.to_string(),
            });
        }
    }
    format!("def {name}({})", params.join(", "))
}

/// SWE-smith's tags and complexity of the subtree rooted at `id`.
fn analyze(tree: &Tree, id: NodeId) -> (u32, i64) {
    let mut tags = match tree.node(id).kind {
        "FunctionDef" => bit("is_function"),
        _ => bit("is_class"),
    };
    let mut complexity = 1i64;
    for i in tree.subtree(id) {
        let n = tree.node(i);
        tags |= match n.kind {
            "For" | "While" => bit("has_loop"),
            "If" if n.count > 0 => bit("has_if") | bit("has_if_else"),
            "If" => bit("has_if"),
            "Try" => bit("has_exception") | bit("has_wrapper"),
            "With" => bit("has_wrapper"),
            "Subscript" => bit("has_list_indexing"),
            "Call" => bit("has_function_call"),
            "Return" => bit("has_return"),
            "ListComp" => bit("has_list_comprehension"),
            "Import" | "ImportFrom" => bit("has_import"),
            "Assign" => bit("has_assignment"),
            "Lambda" => bit("has_lambda"),
            "BinOp" => bit("has_arithmetic") | bit("has_binary_op"),
            "UnaryOp" => bit("has_arithmetic") | bit("has_unary_op"),
            "BoolOp" => bit("has_bool_op"),
            "FunctionDef" if n.count > 0 => bit("has_decorator"),
            "ClassDef" if n.flag => bit("has_parent"),
            "Compare" if n.ops.len() == 1 && matches!(n.ops[0].text.as_str(), "<" | ">" | "<=" | ">=") => {
                bit("has_off_by_one")
            }
            _ => 0,
        };
        complexity += match n.kind {
            "If" | "For" | "While" => 1,
            // An `elif` is an `If` in Python's ast; an `else` clause is not.
            "ElifElseClause" if tree.children_with_role(i, "test").next().is_some() => 1,
            "BoolOp" => tree.children_with_role(i, "values").count() as i64 - 1,
            "Try" => i64::from(n.count),
            "Compare" => n.ops.len() as i64,
            _ => 0,
        };
    }
    (tags, complexity)
}

/// Whether a repository-relative path is a test file: SWE-smith's rule (a `tests`/`test`/`specs`
/// folder, a name starting with `test`, `conftest.py`) without its false positive for stems that
/// merely end in `test` (`latest.py` is code; `x_test.py` and `x_tests.py` are tests).
pub fn is_test_path(path: &str) -> bool {
    let mut parts: Vec<&str> = path.split('/').collect();
    let file = parts.pop().unwrap_or("");
    if parts.iter().any(|p| matches!(*p, "tests" | "test" | "specs")) {
        return true;
    }
    let lower = file.to_lowercase();
    let stem = lower.strip_suffix(".py").unwrap_or(&lower);
    lower.starts_with("test") || stem == "conftest" || stem.ends_with("_test") || stem.ends_with("_tests")
}

#[cfg(test)]
mod tests;
