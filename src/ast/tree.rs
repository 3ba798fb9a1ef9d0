//! The node tree of one parsed file: a flat, pre-order arena built from ruff's AST.
//!
//! Scripts see Python's syntax through this tree, never through ruff's types, so a parser
//! upgrade touches only this module. Every node has a kind (Python `ast` names such as `BinOp`,
//! `If`, `FunctionDef`), a byte span, its parent, its children with the field ("role") they fill
//! in the parent, and, for operator nodes, the spans of the operator tokens.

use ruff_python_ast::token::{TokenKind, Tokens};
use ruff_python_ast::visitor::source_order::{SourceOrderVisitor, TraversalSignal};
use ruff_python_ast::{AnyNodeRef, ExceptHandler, Expr, ModModule, NodeKind};
use ruff_text_size::{Ranged, TextRange, TextSize};

/// Index of a node in its file's [`Tree`].
pub type NodeId = u32;

/// An operator token (or a two-word operator such as `not in`) with its byte span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// The operator as written, with single spaces between words (`+`, `not in`, `and`).
    pub text: String,
    /// Byte offset of the operator's first character.
    pub start: u32,
    /// Byte offset just past the operator.
    pub end: u32,
}

/// One node of the tree.
#[derive(Clone, Debug)]
pub struct NodeData {
    /// Python `ast` style kind name (`BinOp`, `FunctionDef`, `ExceptHandler`, `Identifier`, …).
    pub kind: &'static str,
    /// Byte span in the file (ruff's range; a decorated definition starts at its first decorator).
    pub start: u32,
    /// Byte offset just past the node.
    pub end: u32,
    /// Parent node, `None` for the module.
    pub parent: Option<NodeId>,
    /// The field of the parent this node fills (`left`, `body`, `test`, …); empty when unnamed.
    pub role: &'static str,
    /// Direct children in source order.
    pub children: Vec<NodeId>,
    /// One past the last node of this node's subtree (pre-order numbering).
    pub subtree_end: NodeId,
    /// Operators of `BinOp`, `BoolOp`, `Compare`, `UnaryOp` and `AugAssign` nodes.
    pub ops: Vec<Operator>,
    /// Kind-specific flag: `is_async` for defs, loops and `with`; "has bases" for classes.
    pub flag: bool,
    /// Kind-specific count: decorators of a def, `except` handlers of a `try`, `elif` clauses of an `if`.
    pub count: u32,
}

/// All nodes of one file, in pre-order; node 0 is the module.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    /// The nodes; a node's subtree is `id..subtree_end`.
    pub nodes: Vec<NodeData>,
}

impl Tree {
    /// Builds the tree of a parsed module.
    pub(super) fn build(module: &ModModule, tokens: &Tokens, source: &str) -> Tree {
        let mut builder = Builder { tree: Tree::default(), stack: Vec::new(), tokens, source };
        let root = AnyNodeRef::from(module);
        builder.enter_node(root);
        builder.visit_body(&module.body);
        builder.leave_node(root);
        builder.tree
    }

    /// The node with this id.
    pub fn node(&self, id: NodeId) -> &NodeData {
        &self.nodes[id as usize]
    }

    /// Ids of the node's subtree, the node included, in pre-order.
    pub fn subtree(&self, id: NodeId) -> std::ops::Range<NodeId> {
        id..self.node(id).subtree_end
    }

    /// Children of `id` that fill `role`, in source order.
    pub fn children_with_role<'a>(&'a self, id: NodeId, role: &'a str) -> impl Iterator<Item = NodeId> + 'a {
        self.node(id).children.iter().copied().filter(move |&c| self.node(c).role == role)
    }

    /// Whether `ancestor` is `id` or one of its ancestors.
    pub fn contains(&self, ancestor: NodeId, id: NodeId) -> bool {
        (ancestor..self.node(ancestor).subtree_end).contains(&id)
    }
}

/// Roles whose value is one node (or `()` when absent).
pub const SINGLE_ROLES: &[&str] = &[
    "name",
    "parameters",
    "returns",
    "arguments",
    "test",
    "target",
    "iter",
    "context_expr",
    "optional_vars",
    "type",
    "subject",
    "pattern",
    "guard",
    "value",
    "annotation",
    "left",
    "right",
    "operand",
    "func",
    "arg",
    "attr",
    "slice",
    "elt",
    "vararg",
    "kwarg",
    "parameter",
    "default_value",
    "lower",
    "upper",
    "step",
];

/// Whether any node kind has a child in this role.
pub fn is_known_role(role: &str) -> bool {
    LIST_ROLES.contains(&role) || SINGLE_ROLES.contains(&role)
}

/// Roles whose value is a list (a script gets an array for these even when it holds one node).
pub const LIST_ROLES: &[&str] = &[
    "body",
    "orelse",
    "finalbody",
    "handlers",
    "decorators",
    "items",
    "targets",
    "values",
    "comparators",
    "args",
    "posonlyargs",
    "kwonlyargs",
    "keywords",
    "cases",
    "elts",
    "clauses",
    "generators",
];

struct Frame {
    id: NodeId,
    /// Roles the parent expects for its direct children, by node address.
    roles: Vec<(usize, &'static str)>,
    /// Where the last match was: children mostly come in the order the roles were listed.
    cursor: usize,
}

struct Builder<'a> {
    tree: Tree,
    stack: Vec<Frame>,
    tokens: &'a Tokens,
    source: &'a str,
}

fn ptr<'a>(node: impl Into<AnyNodeRef<'a>>) -> usize {
    node.into().as_ptr().as_ptr() as usize
}

fn offset(size: TextSize) -> u32 {
    size.to_u32()
}

impl Builder<'_> {
    /// The operator tokens between two byte offsets (parentheses and trivia skipped).
    fn operator_between(&self, start: TextSize, end: TextSize) -> Option<Operator> {
        if start > end {
            return None;
        }
        let tokens = self.tokens.in_range(TextRange::new(start, end));
        let words: Vec<_> = tokens
            .iter()
            .filter(|t| {
                !matches!(
                    t.kind(),
                    TokenKind::Lpar
                        | TokenKind::Rpar
                        | TokenKind::Comment
                        | TokenKind::NonLogicalNewline
                        | TokenKind::Newline
                        | TokenKind::Indent
                        | TokenKind::Dedent
                )
            })
            .collect();
        let (first, last) = (words.first()?, words.last()?);
        let text = words.iter().map(|t| &self.source[t.range()]).collect::<Vec<_>>().join(" ");
        Some(Operator { text, start: offset(first.start()), end: offset(last.end()) })
    }

    fn operators_between_all(&self, bounds: impl Iterator<Item = (TextSize, TextSize)>) -> Vec<Operator> {
        bounds.filter_map(|(s, e)| self.operator_between(s, e)).collect()
    }

    /// Roles, operators, flag and count for a node being entered.
    fn describe(&self, node: AnyNodeRef<'_>) -> (Vec<(usize, &'static str)>, Vec<Operator>, bool, u32) {
        let mut roles: Vec<(usize, &'static str)> = Vec::new();
        let mut ops = Vec::new();
        let mut flag = false;
        let mut count = 0;
        let list = |items: &mut Vec<(usize, &'static str)>, role: &'static str, ptrs: Vec<usize>| {
            items.extend(ptrs.into_iter().map(|p| (p, role)));
        };
        match node {
            AnyNodeRef::ModModule(m) => list(&mut roles, "body", m.body.iter().map(ptr).collect()),
            AnyNodeRef::StmtFunctionDef(f) => {
                flag = f.is_async;
                count = f.decorator_list.len() as u32;
                list(&mut roles, "decorators", f.decorator_list.iter().map(ptr).collect());
                roles.push((ptr(&f.name), "name"));
                roles.push((ptr(&*f.parameters), "parameters"));
                if let Some(r) = &f.returns {
                    roles.push((ptr(&**r), "returns"));
                }
                list(&mut roles, "body", f.body.iter().map(ptr).collect());
            }
            AnyNodeRef::StmtClassDef(c) => {
                flag = c.arguments.as_ref().is_some_and(|a| !a.args.is_empty());
                count = c.decorator_list.len() as u32;
                list(&mut roles, "decorators", c.decorator_list.iter().map(ptr).collect());
                roles.push((ptr(&c.name), "name"));
                if let Some(a) = &c.arguments {
                    roles.push((ptr(&**a), "arguments"));
                }
                list(&mut roles, "body", c.body.iter().map(ptr).collect());
            }
            AnyNodeRef::StmtIf(s) => {
                count = s.elif_else_clauses.len() as u32;
                roles.push((ptr(&*s.test), "test"));
                list(&mut roles, "body", s.body.iter().map(ptr).collect());
                list(&mut roles, "clauses", s.elif_else_clauses.iter().map(ptr).collect());
            }
            AnyNodeRef::ElifElseClause(c) => {
                if let Some(t) = &c.test {
                    roles.push((ptr(t), "test"));
                }
                list(&mut roles, "body", c.body.iter().map(ptr).collect());
            }
            AnyNodeRef::StmtFor(s) => {
                flag = s.is_async;
                roles.push((ptr(&*s.target), "target"));
                roles.push((ptr(&*s.iter), "iter"));
                list(&mut roles, "body", s.body.iter().map(ptr).collect());
                list(&mut roles, "orelse", s.orelse.iter().map(ptr).collect());
            }
            AnyNodeRef::StmtWhile(s) => {
                roles.push((ptr(&*s.test), "test"));
                list(&mut roles, "body", s.body.iter().map(ptr).collect());
                list(&mut roles, "orelse", s.orelse.iter().map(ptr).collect());
            }
            AnyNodeRef::StmtWith(s) => {
                flag = s.is_async;
                list(&mut roles, "items", s.items.iter().map(ptr).collect());
                list(&mut roles, "body", s.body.iter().map(ptr).collect());
            }
            AnyNodeRef::WithItem(w) => {
                roles.push((ptr(&w.context_expr), "context_expr"));
                if let Some(v) = &w.optional_vars {
                    roles.push((ptr(&**v), "optional_vars"));
                }
            }
            AnyNodeRef::StmtTry(s) => {
                count = s.handlers.len() as u32;
                list(&mut roles, "body", s.body.iter().map(ptr).collect());
                list(&mut roles, "handlers", s.handlers.iter().map(ptr).collect());
                list(&mut roles, "orelse", s.orelse.iter().map(ptr).collect());
                list(&mut roles, "finalbody", s.finalbody.iter().map(ptr).collect());
            }
            AnyNodeRef::ExceptHandlerExceptHandler(h) => {
                if let Some(t) = &h.type_ {
                    roles.push((ptr(&**t), "type"));
                }
                if let Some(n) = &h.name {
                    roles.push((ptr(n), "name"));
                }
                list(&mut roles, "body", h.body.iter().map(ptr).collect());
            }
            AnyNodeRef::StmtMatch(m) => {
                roles.push((ptr(&*m.subject), "subject"));
                list(&mut roles, "cases", m.cases.iter().map(ptr).collect());
            }
            AnyNodeRef::MatchCase(c) => {
                roles.push((ptr(&c.pattern), "pattern"));
                if let Some(g) = &c.guard {
                    roles.push((ptr(&**g), "guard"));
                }
                list(&mut roles, "body", c.body.iter().map(ptr).collect());
            }
            AnyNodeRef::StmtAssign(a) => {
                list(&mut roles, "targets", a.targets.iter().map(ptr).collect());
                roles.push((ptr(&*a.value), "value"));
            }
            AnyNodeRef::StmtAugAssign(a) => {
                roles.push((ptr(&*a.target), "target"));
                roles.push((ptr(&*a.value), "value"));
                ops.extend(self.operator_between(a.target.end(), a.value.start()));
            }
            AnyNodeRef::StmtAnnAssign(a) => {
                roles.push((ptr(&*a.target), "target"));
                roles.push((ptr(&*a.annotation), "annotation"));
                if let Some(v) = &a.value {
                    roles.push((ptr(&**v), "value"));
                }
            }
            AnyNodeRef::StmtReturn(r) => {
                if let Some(v) = &r.value {
                    roles.push((ptr(&**v), "value"));
                }
            }
            AnyNodeRef::StmtExpr(e) => roles.push((ptr(&*e.value), "value")),
            AnyNodeRef::ExprBinOp(b) => {
                roles.push((ptr(&*b.left), "left"));
                roles.push((ptr(&*b.right), "right"));
                ops.extend(self.operator_between(b.left.end(), b.right.start()));
            }
            AnyNodeRef::ExprBoolOp(b) => {
                list(&mut roles, "values", b.values.iter().map(ptr).collect());
                ops = self.operators_between_all(b.values.windows(2).map(|w| (w[0].end(), w[1].start())));
            }
            AnyNodeRef::ExprCompare(c) => {
                roles.push((ptr(&*c.left), "left"));
                list(&mut roles, "comparators", c.comparators.iter().map(ptr).collect());
                let operands: Vec<&Expr> = std::iter::once(&*c.left).chain(c.comparators.iter()).collect();
                ops = self.operators_between_all(operands.windows(2).map(|w| (w[0].end(), w[1].start())));
            }
            AnyNodeRef::ExprUnaryOp(u) => {
                roles.push((ptr(&*u.operand), "operand"));
                ops.extend(self.operator_between(u.start(), u.operand.start()));
            }
            AnyNodeRef::ExprCall(c) => {
                roles.push((ptr(&*c.func), "func"));
                roles.push((ptr(&c.arguments), "arguments"));
            }
            AnyNodeRef::Arguments(a) => {
                list(&mut roles, "args", a.args.iter().map(ptr).collect());
                list(&mut roles, "keywords", a.keywords.iter().map(ptr).collect());
            }
            AnyNodeRef::Keyword(k) => {
                if let Some(a) = &k.arg {
                    roles.push((ptr(a), "arg"));
                }
                roles.push((ptr(&k.value), "value"));
            }
            AnyNodeRef::ExprAttribute(a) => {
                roles.push((ptr(&*a.value), "value"));
                roles.push((ptr(&a.attr), "attr"));
            }
            AnyNodeRef::ExprSubscript(s) => {
                roles.push((ptr(&*s.value), "value"));
                roles.push((ptr(&*s.slice), "slice"));
            }
            AnyNodeRef::ExprIf(e) => {
                roles.push((ptr(&*e.test), "test"));
                roles.push((ptr(&*e.body), "body"));
                roles.push((ptr(&*e.orelse), "orelse"));
            }
            AnyNodeRef::ExprNamed(n) => {
                roles.push((ptr(&*n.target), "target"));
                roles.push((ptr(&*n.value), "value"));
            }
            AnyNodeRef::ExprList(l) => list(&mut roles, "elts", l.elts.iter().map(ptr).collect()),
            AnyNodeRef::ExprTuple(t) => list(&mut roles, "elts", t.elts.iter().map(ptr).collect()),
            AnyNodeRef::ExprSet(s) => list(&mut roles, "elts", s.elts.iter().map(ptr).collect()),
            AnyNodeRef::ExprListComp(c) => {
                roles.push((ptr(&*c.elt), "elt"));
                list(&mut roles, "generators", c.generators.iter().map(ptr).collect());
            }
            AnyNodeRef::Parameters(p) => {
                list(&mut roles, "posonlyargs", p.posonlyargs.iter().map(ptr).collect());
                list(&mut roles, "args", p.args.iter().map(ptr).collect());
                if let Some(v) = &p.vararg {
                    roles.push((ptr(&**v), "vararg"));
                }
                list(&mut roles, "kwonlyargs", p.kwonlyargs.iter().map(ptr).collect());
                if let Some(k) = &p.kwarg {
                    roles.push((ptr(&**k), "kwarg"));
                }
            }
            AnyNodeRef::ParameterWithDefault(p) => {
                roles.push((ptr(&p.parameter), "parameter"));
                if let Some(d) = &p.default {
                    roles.push((ptr(&**d), "default_value"));
                }
            }
            AnyNodeRef::ExprSlice(s) => {
                for (part, role) in [(&s.lower, "lower"), (&s.upper, "upper"), (&s.step, "step")] {
                    if let Some(part) = part {
                        roles.push((ptr(&**part), role));
                    }
                }
            }
            AnyNodeRef::Parameter(p) => {
                roles.push((ptr(&p.name), "name"));
                if let Some(a) = &p.annotation {
                    roles.push((ptr(&**a), "annotation"));
                }
            }
            _ => {}
        }
        (roles, ops, flag, count)
    }
}

impl<'a> SourceOrderVisitor<'a> for Builder<'_> {
    fn enter_node(&mut self, node: AnyNodeRef<'a>) -> TraversalSignal {
        let id = self.tree.nodes.len() as NodeId;
        let address = node.as_ptr().as_ptr() as usize;
        let (parent, role) = match self.stack.last_mut() {
            Some(frame) => {
                let n = frame.roles.len();
                let found = (0..n).map(|k| (frame.cursor + k) % n).find(|&i| frame.roles[i].0 == address);
                let role = found.map_or("", |i| {
                    frame.cursor = i + 1;
                    frame.roles[i].1
                });
                (Some(frame.id), role)
            }
            None => (None, ""),
        };
        if let Some(p) = parent {
            self.tree.nodes[p as usize].children.push(id);
        }
        let (roles, ops, flag, count) = self.describe(node);
        self.tree.nodes.push(NodeData {
            kind: kind_name(node.kind()),
            start: offset(node.start()),
            end: offset(node.end()),
            parent,
            role,
            children: Vec::new(),
            subtree_end: id + 1,
            ops,
            flag,
            count,
        });
        self.stack.push(Frame { id, roles, cursor: 0 });
        TraversalSignal::Traverse
    }

    fn leave_node(&mut self, _node: AnyNodeRef<'a>) {
        if let Some(frame) = self.stack.pop() {
            let end = self.tree.nodes.len() as NodeId;
            self.tree.nodes[frame.id as usize].subtree_end = end;
        }
    }

    fn visit_except_handler(&mut self, handler: &'a ExceptHandler) {
        ruff_python_ast::visitor::source_order::walk_except_handler(self, handler);
    }
}

/// Python `ast` style name of a ruff node kind.
fn kind_name(kind: NodeKind) -> &'static str {
    use NodeKind as K;
    match kind {
        K::ModModule | K::ModExpression => "Module",
        K::StmtFunctionDef => "FunctionDef",
        K::StmtClassDef => "ClassDef",
        K::StmtReturn => "Return",
        K::StmtDelete => "Delete",
        K::StmtTypeAlias => "TypeAlias",
        K::StmtAssign => "Assign",
        K::StmtAugAssign => "AugAssign",
        K::StmtAnnAssign => "AnnAssign",
        K::StmtFor => "For",
        K::StmtWhile => "While",
        K::StmtIf => "If",
        K::StmtWith => "With",
        K::StmtMatch => "Match",
        K::StmtRaise => "Raise",
        K::StmtTry => "Try",
        K::StmtAssert => "Assert",
        K::StmtImport => "Import",
        K::StmtImportFrom => "ImportFrom",
        K::StmtGlobal => "Global",
        K::StmtNonlocal => "Nonlocal",
        K::StmtExpr => "Expr",
        K::StmtPass => "Pass",
        K::StmtBreak => "Break",
        K::StmtContinue => "Continue",
        K::StmtIpyEscapeCommand | K::ExprIpyEscapeCommand => "IpyEscapeCommand",
        K::ExprBoolOp => "BoolOp",
        K::ExprNamed => "NamedExpr",
        K::ExprBinOp => "BinOp",
        K::ExprUnaryOp => "UnaryOp",
        K::ExprLambda => "Lambda",
        K::ExprIf => "IfExp",
        K::ExprDict => "Dict",
        K::ExprSet => "Set",
        K::ExprListComp => "ListComp",
        K::ExprSetComp => "SetComp",
        K::ExprDictComp => "DictComp",
        K::ExprGenerator => "GeneratorExp",
        K::ExprAwait => "Await",
        K::ExprYield => "Yield",
        K::ExprYieldFrom => "YieldFrom",
        K::ExprCompare => "Compare",
        K::ExprCall => "Call",
        K::ExprFString => "JoinedStr",
        K::ExprTString => "TemplateStr",
        K::ExprStringLiteral => "String",
        K::ExprBytesLiteral => "Bytes",
        K::ExprNumberLiteral => "Number",
        K::ExprBooleanLiteral => "Boolean",
        K::ExprNoneLiteral => "None",
        K::ExprEllipsisLiteral => "Ellipsis",
        K::ExprAttribute => "Attribute",
        K::ExprSubscript => "Subscript",
        K::ExprStarred => "Starred",
        K::ExprName => "Name",
        K::ExprList => "List",
        K::ExprTuple => "Tuple",
        K::ExprSlice => "Slice",
        K::ExceptHandlerExceptHandler => "ExceptHandler",
        K::InterpolatedElement => "FormattedValue",
        K::InterpolatedStringLiteralElement => "StringPart",
        K::InterpolatedStringFormatSpec => "FormatSpec",
        K::PatternMatchValue => "MatchValue",
        K::PatternMatchSingleton => "MatchSingleton",
        K::PatternMatchSequence => "MatchSequence",
        K::PatternMatchMapping => "MatchMapping",
        K::PatternMatchClass => "MatchClass",
        K::PatternMatchStar => "MatchStar",
        K::PatternMatchAs => "MatchAs",
        K::PatternMatchOr => "MatchOr",
        K::PatternArguments => "PatternArguments",
        K::PatternKeyword => "PatternKeyword",
        K::TypeParamTypeVar => "TypeVar",
        K::TypeParamTypeVarTuple => "TypeVarTuple",
        K::TypeParamParamSpec => "ParamSpec",
        K::TypeParams => "TypeParams",
        K::Comprehension => "Comprehension",
        K::Arguments => "Arguments",
        K::Parameters => "Parameters",
        K::Parameter => "Parameter",
        K::ParameterWithDefault => "ParameterWithDefault",
        K::Keyword => "Keyword",
        K::Alias => "Alias",
        K::WithItem => "WithItem",
        K::MatchCase => "MatchCase",
        K::Decorator => "Decorator",
        K::ElifElseClause => "ElifElseClause",
        K::FString => "FStringPart",
        K::TString => "TStringPart",
        K::StringLiteral => "StringPart",
        K::BytesLiteral => "BytesPart",
        K::Identifier => "Identifier",
    }
}
