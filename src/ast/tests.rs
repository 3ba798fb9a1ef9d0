use super::*;

fn parse(text: &str) -> SourceFile {
    SourceFile::parse("m.py", text.to_string()).unwrap()
}

fn entity<'a>(file: &'a SourceFile, name: &str) -> &'a Entity {
    file.entities().iter().find(|e| e.qualified_name == name).unwrap()
}

#[test]
fn swe_smiths_worked_complexity_example_gives_seven() {
    // reference §2.3: If 1 + Or 1 + And 1 + three comparisons = 6, plus the base 1.
    let file = parse("def f(a, b):\n    if a > b and b < 3 or a == 1:\n        return a\n");
    assert_eq!(entity(&file, "f").complexity, 7);
}

#[test]
fn complexity_counts_loops_elifs_handlers_and_bool_operands() {
    let file = parse(
        "def f(x):\n    for i in x:\n        while i:\n            i -= 1\n    if x:\n        pass\n    elif x or x or x:\n        pass\n    else:\n        pass\n    try:\n        pass\n    except A:\n        pass\n    except B:\n        pass\n",
    );
    // 1 + for 1 + while 1 + if 1 + elif 1 + `x or x or x` 2 + two handlers 2
    assert_eq!(entity(&file, "f").complexity, 9);
}

#[test]
fn tags_follow_swe_smiths_rules() {
    let file = parse(
        "@deco\ndef f(a, b):\n    x = a + b\n    y = -x\n    if a and b:\n        return [i for i in x][0]\n    else:\n        with open(a) as h:\n            import os\n    return lambda: a < b\n",
    );
    let f = entity(&file, "f");
    assert_eq!(
        f.tag_names(),
        vec![
            "is_function",
            "has_if",
            "has_if_else",
            "has_arithmetic",
            "has_assignment",
            "has_decorator",
            "has_function_call",
            "has_import",
            "has_lambda",
            "has_list_comprehension",
            "has_list_indexing",
            "has_off_by_one",
            "has_return",
            "has_wrapper",
            "has_binary_op",
            "has_bool_op",
            "has_unary_op",
        ]
    );
}

#[test]
fn an_augmented_assignment_is_not_an_assignment_and_a_class_with_bases_has_a_parent() {
    let file = parse("class C(B):\n    def m(self):\n        self.x += 1\n");
    assert!(entity(&file, "C").has("has_parent"));
    assert!(entity(&file, "C").has("is_class"));
    assert!(!entity(&file, "C.m").has("has_assignment"));
}

#[test]
fn methods_nested_and_async_functions_are_entities_in_source_order() {
    let file = parse(
        "class A:\n    def m(self):\n        def inner():\n            pass\n    async def n(self):\n        pass\n\nasync def top():\n    pass\n",
    );
    let names: Vec<&str> = file.entities().iter().map(|e| e.qualified_name.as_str()).collect();
    assert_eq!(names, ["A", "A.m", "A.m.inner", "A.n", "top"]);
    assert!(entity(&file, "top").is_async);
    assert!(!entity(&file, "A.m").is_async);
    assert_eq!(entity(&file, "A.m.inner").indent, "        ");
}

#[test]
fn decorators_are_inside_the_span_but_not_the_start_line() {
    let file = parse("x = 1\n\n@a\n# note\n@b(1)\ndef f():\n    return 1\n");
    let f = entity(&file, "f");
    assert_eq!((f.decorated_line_start, f.line_start, f.line_end), (3, 6, 7));
    assert_eq!(&file.text()[f.start as usize..f.end as usize], "@a\n# note\n@b(1)\ndef f():\n    return 1");
}

#[test]
fn signatures_keep_plain_positional_parameters_with_annotations() {
    let file = parse("def f(a, /, b: int, c=2, *args, d, **kw):\n    pass\nclass K(Base):\n    pass\n");
    assert_eq!(entity(&file, "f").signature, "def f(b: int, c)");
    assert_eq!(entity(&file, "K").signature, "class K:");
}

#[test]
fn tab_indented_files_use_the_tab_width_as_indent_size() {
    let file = parse("class A:\n\tdef m(self):\n\t\treturn 1\n");
    let m = entity(&file, "A.m");
    assert_eq!((m.indent_size, m.indent_level, m.indent.as_str()), (8, 1, "\t"));
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let err = SourceFile::parse("bad.py", "def f(:\n    pass\n".into()).unwrap_err();
    assert_eq!((err.line, err.column), (1, 7));
    assert!(!err.message.is_empty());
}

#[test]
fn modern_syntax_parses() {
    let file = parse(
        "def f[T](x: T) -> T:\n    match x:\n        case [a, *rest]:\n            return a\n    return f\"{x!r:>{10}}\"\n",
    );
    assert_eq!(file.entities().len(), 1);
}

#[test]
fn operators_have_spans_even_inside_parentheses_and_across_words() {
    let file = parse("def f(a, b):\n    return (a) + (b) if a is not b else a not in b\n");
    let tree = file.tree();
    let ops: Vec<String> = tree.nodes.iter().flat_map(|n| n.ops.iter().map(|o| o.text.clone())).collect();
    assert_eq!(ops, ["+", "is not", "not in"]);
    let plus = tree.nodes.iter().find(|n| n.kind == "BinOp").unwrap();
    assert_eq!(&file.text()[plus.ops[0].start as usize..plus.ops[0].end as usize], "+");
}

#[test]
fn children_know_the_field_they_fill() {
    let file = parse("if a:\n    x = 1\nelif b:\n    y = 2\nelse:\n    z = 3\n");
    let tree = file.tree();
    let if_node = tree.nodes.iter().position(|n| n.kind == "If").unwrap() as NodeId;
    assert_eq!(tree.children_with_role(if_node, "test").count(), 1);
    assert_eq!(tree.children_with_role(if_node, "body").count(), 1);
    assert_eq!(tree.children_with_role(if_node, "clauses").count(), 2);
}

#[test]
fn test_paths_match_swe_smiths_rule_without_its_false_positives() {
    for path in ["tests/a.py", "pkg/test/b.py", "specs/c.py", "test_x.py", "pkg/x_test.py", "conftest.py", "Testing.py"]
    {
        assert!(is_test_path(path), "{path}");
    }
    for path in ["latest.py", "pkg/contest.py", "attest/x.py", "pkg/protest.py", "src/mytests/x.py"] {
        assert!(!is_test_path(path), "{path}");
    }
}

#[test]
fn line_index_handles_crlf_and_unicode_columns() {
    let text = "a\r\nbé c\n";
    let lines = LineIndex::new(text);
    assert_eq!(lines.line_column(text, 3), (2, 1));
    assert_eq!(lines.line_column(text, 7), (2, 4));
}
