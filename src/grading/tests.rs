use super::*;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/logs/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn render(run: &TestRun) -> String {
    serde_json::to_string_pretty(run).unwrap()
}

/// What every pytest source must agree on for the probe suite.
fn expected_probe() -> TestRun {
    let mut run = TestRun::default();
    for (id, status) in [
        ("tests/sub/test_ok.py::test_ok", TestStatus::Passed),
        ("tests/test_mixed.py::test_params[a b]", TestStatus::Passed),
        ("tests/test_mixed.py::test_params[x[y]]", TestStatus::Failed),
        ("tests/test_mixed.py::test_params[plain]", TestStatus::Passed),
        ("tests/test_mixed.py::test_expected_failure", TestStatus::Xfail),
        ("tests/test_mixed.py::test_setup_error", TestStatus::Error),
        ("tests/test_mixed.py::TestGroup::test_inside", TestStatus::Passed),
        ("tests/test_mixed.py::TestGroup::test_fails", TestStatus::Failed),
    ] {
        run.tests.insert(id.into(), status);
    }
    run.collection_errors.insert("tests/sub/test_broken_import.py".into());
    run
}

#[test]
fn junit_xml_gives_node_ids_with_spaces_brackets_classes_and_collection_errors() {
    let mut expected = expected_probe();
    expected.tests.insert("tests/test_mixed.py::test_skipped".into(), TestStatus::Skipped);
    let mut run = parse_junit(&fixture("pytest-junit.xml")).unwrap();
    assert_eq!(run.seconds.len(), 9, "a duration for every test case");
    run.seconds.clear();
    assert_eq!(render(&run), render(&expected));
}

#[test]
fn verbose_text_agrees_with_junit() {
    let mut expected = expected_probe();
    expected.tests.insert("tests/test_mixed.py::test_skipped".into(), TestStatus::Skipped);
    assert_eq!(render(&parse_pytest_text(&fixture("pytest-verbose.txt"))), render(&expected));
}

#[test]
fn short_summary_text_agrees_except_for_skips_it_does_not_name() {
    assert_eq!(render(&parse_pytest_text(&fixture("pytest-ra.txt"))), render(&expected_probe()));
}

#[test]
fn unittest_text_gives_every_outcome() {
    let run = parse_unittest_text(&fixture("unittest-verbose.txt"));
    let statuses: Vec<(&str, TestStatus)> = run.tests.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        statuses,
        [
            ("test_add (__main__.Arithmetic.test_add)", TestStatus::Passed),
            ("test_known_bug (__main__.Arithmetic.test_known_bug)", TestStatus::Xfail),
            ("test_raises (__main__.Arithmetic.test_raises)", TestStatus::Error),
            ("test_skip (__main__.Arithmetic.test_skip)", TestStatus::Skipped),
            ("test_wrong (__main__.Arithmetic.test_wrong)", TestStatus::Failed),
        ]
    );
}

#[test]
fn malformed_xml_is_an_error() {
    assert!(parse_junit("<testsuites><testcase name='x'></testsuite>").is_err());
}

fn run_of(tests: &[(&str, TestStatus)]) -> TestRun {
    TestRun { tests: tests.iter().map(|(k, v)| (k.to_string(), *v)).collect(), ..TestRun::default() }
}

#[test]
fn flaky_tests_are_those_whose_outcome_differs_between_clean_runs() {
    use TestStatus::*;
    let first = run_of(&[("a.py::x", Passed), ("a.py::y", Passed), ("a.py::z", Failed)]);
    let second = run_of(&[("a.py::x", Passed), ("a.py::y", Failed)]);
    let baseline = Baseline::from_runs(&[first, second], 1.5);
    assert_eq!(baseline.tests.keys().collect::<Vec<_>>(), ["a.py::x"]);
    assert_eq!(baseline.flaky.iter().collect::<Vec<_>>(), ["a.py::y", "a.py::z"]);
}

#[test]
fn grading_counts_vanished_and_erroring_tests_as_failing_and_says_why() {
    use TestStatus::*;
    let clean = run_of(&[
        ("a.py::keeps", Passed),
        ("a.py::breaks", Passed),
        ("a.py::errors", Passed),
        ("b.py::vanishes", Passed),
        ("c.py::gone", Passed),
        ("a.py::was_red", Failed),
        ("a.py::heals", Failed),
        ("a.py::skipped_now", Passed),
    ]);
    let baseline = Baseline::from_runs(&[clean.clone(), clean], 1.0);
    let mut buggy = run_of(&[
        ("a.py::keeps", Passed),
        ("a.py::breaks", Failed),
        ("a.py::errors", Error),
        ("a.py::was_red", Failed),
        ("a.py::heals", Passed),
        ("a.py::skipped_now", Skipped),
    ]);
    buggy.collection_errors.insert("b.py".into());
    let grade = grade(&baseline, &buggy);
    assert_eq!(grade.fail_to_pass, ["a.py::breaks", "a.py::errors", "b.py::vanishes"]);
    assert_eq!(grade.pass_to_pass, ["a.py::keeps"]);
    assert_eq!(grade.fail_to_fail, ["a.py::was_red"]);
    assert_eq!(grade.pass_to_fail, ["a.py::heals"]);
    assert_eq!(grade.not_run, ["c.py::gone"], "a test that vanished without an import error never ran");
    let kinds: Vec<FailureKind> = grade.failure_kinds.values().copied().collect();
    assert_eq!(kinds, [FailureKind::Failed, FailureKind::Error, FailureKind::CollectionError]);
}

#[test]
fn junit_failure_texts_are_kept_per_test() {
    let failures = junit_failures(&fixture("pytest-junit.xml"));
    assert!(failures["tests/test_mixed.py::TestGroup::test_fails"].contains("assert (1 + 1) == 3"), "{failures:#?}");
    assert!(failures["tests/test_mixed.py::test_setup_error"].contains("setup fails"));
    assert!(!failures.contains_key("tests/test_mixed.py::TestGroup::test_inside"));
}

#[test]
fn a_run_is_finished_only_when_its_summary_line_was_printed() {
    assert!(pytest_finished("t.py::a PASSED\n============ 1 passed, 2 skipped in 0.12s ============\n"));
    assert!(pytest_finished("..\n2 passed in 0.01s\n"), "-q's bare summary");
    assert!(pytest_finished("======= 1 failed, 3 passed, 1 warning in 12.50s (0:00:12) =======\n"));
    assert!(pytest_finished("ImportError while loading conftest '/t/conftest.py'.\n"));
    assert!(!pytest_finished("t.py::a PASSED\nt.py::b "), "cut off mid-suite");
    assert!(!pytest_finished("see the docs in 5s\n"));
    assert!(unittest_finished("test_a (t.T.test_a) ... ok\n---\nRan 1 test in 0.001s\n\nOK\n"));
    assert!(unittest_finished("Ran 2 tests in 0.1s\n\nFAILED (failures=1)\n"));
    assert!(!unittest_finished("test_a (t.T.test_a) ... ok\n"));
}

#[test]
fn a_unittest_module_that_fails_to_import_explains_its_vanished_tests() {
    let run =
        parse_unittest_text("test_x (unittest.loader._FailedTest.test_x) ... ERROR\ntest_b (test_y.T.test_b) ... ok\n");
    assert!(run.collection_errors.contains("test_x"));
    assert!(vanished_by_import_error("test_a (test_x.T.test_a)", &run));
    assert!(!vanished_by_import_error("test_c (test_z.T.test_c)", &run));
    assert!(!run.tests.keys().any(|k| k.contains("_FailedTest")));
}
