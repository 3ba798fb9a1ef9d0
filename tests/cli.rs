//! The `bugsmith` binary end to end: `gen` on real PyPI sdists, bad input of every kind,
//! `try`, and `strategies list|check`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::{bugsmith, json, manifest, shared_cache, stdout};
use serde_json::Value;

/// Every file under `dir`, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file() && e.file_name() != "bugsmith.log")
        .map(|e| (e.path().strip_prefix(dir).unwrap().display().to_string(), std::fs::read(e.path()).unwrap()))
        .collect()
}

fn gen_sdist_end_to_end(spec: &str, min_files: u64, min_strategies_with_candidates: usize) {
    let cache = shared_cache();
    let out = tempfile::tempdir().unwrap();
    let first = out.path().join("first");
    let summary = json(&bugsmith(&["gen", spec, "--out", first.to_str().unwrap(), "--json"], &cache));
    let repo_name = summary["repo_name"].as_str().unwrap().to_string();
    assert!(repo_name.starts_with("pypi__"), "{repo_name}");
    assert!(summary["files"].as_u64().unwrap() >= min_files);
    assert_eq!(summary["skipped_files"].as_array().unwrap().len(), 0);
    assert_eq!(summary["script_errors"].as_array().unwrap().len(), 0, "{:#}", summary["script_errors"]);
    let strategies = summary["strategies"].as_object().unwrap();
    assert_eq!(strategies.len(), 22);
    let productive = strategies.values().filter(|s| s["candidates"].as_u64().unwrap() > 0).count();
    assert!(productive >= min_strategies_with_candidates, "only {productive} strategies made candidates");

    // Every diff applies to a fresh clone of the checkout, with git and with libgit2.
    let checkout = cache.join("checkouts").join(&repo_name);
    let fresh = out.path().join("fresh");
    let cloned = Command::new("git").args(["clone", "-q"]).arg(&checkout).arg(&fresh).status().unwrap();
    assert!(cloned.success());
    let files = tree(&first.join("bug_gen").join(&repo_name));
    let diffs: Vec<(&String, &Vec<u8>)> = files.iter().filter(|(name, _)| name.ends_with(".diff")).collect();
    assert_eq!(diffs.len() as u64, summary["candidates"].as_u64().unwrap());
    assert_eq!(files.len(), 2 * diffs.len(), "a metadata file per diff");
    for (name, diff) in &diffs {
        let patch = out.path().join("candidate.diff");
        std::fs::write(&patch, diff).unwrap();
        let check = Command::new("git").arg("-C").arg(&fresh).args(["apply", "--check"]).arg(&patch).output().unwrap();
        assert!(check.status.success(), "{name}: {}", String::from_utf8_lossy(&check.stderr));
        bugsmith::git::check_applies(&fresh, std::str::from_utf8(diff).unwrap()).unwrap();
        let strategy = name.rsplit("bug__").next().unwrap().split("__").next().unwrap();
        let metadata = name.replace("bug__", "metadata__").replace(".diff", ".json");
        let meta: Value = serde_json::from_slice(&files[&metadata]).unwrap();
        assert_eq!(meta["strategy"], strategy);
        assert_eq!(meta["cost"], 0.0);
        assert!(meta["line_start"].as_u64().unwrap() <= meta["line_end"].as_u64().unwrap());
    }

    // The same seed gives the same bytes; another seed gives other candidates.
    let second = out.path().join("second");
    json(&bugsmith(&["gen", spec, "--out", second.to_str().unwrap(), "--json"], &cache));
    assert_eq!(files, tree(&second.join("bug_gen").join(&repo_name)));
    let third = out.path().join("third");
    json(&bugsmith(&["gen", spec, "--out", third.to_str().unwrap(), "--seed", "7", "--json"], &cache));
    assert_ne!(files, tree(&third.join("bug_gen").join(&repo_name)));
}

#[test]
fn gen_on_the_tinydb_sdist_makes_applicable_deterministic_candidates() {
    gen_sdist_end_to_end("pypi:tinydb==4.8.2", 8, 10);
}

#[test]
fn gen_on_the_parse_sdist_makes_applicable_deterministic_candidates() {
    gen_sdist_end_to_end("pypi:parse==1.20.2", 1, 8);
}

#[test]
fn max_bugs_caps_every_strategy() {
    let out = tempfile::tempdir().unwrap();
    let summary = json(&bugsmith(
        &["gen", "pypi:tinydb==4.8.2", "--out", out.path().to_str().unwrap(), "--max-bugs", "2", "--json"],
        &shared_cache(),
    ));
    for (id, stats) in summary["strategies"].as_object().unwrap() {
        assert!(stats["candidates"].as_u64().unwrap() <= 2, "{id}");
    }
    assert!(summary["candidates"].as_u64().unwrap() >= 14);
}

/// A small repository with one good file, one that does not parse and one that is not UTF-8.
fn repository_with_bad_files(dir: &Path) {
    std::fs::create_dir_all(dir.join("pkg")).unwrap();
    std::fs::write(
        dir.join("pkg/good.py"),
        "def total(items, bonus):\n    result = 0\n    for item in items:\n        if item > 0 and bonus:\n            result = result + item * 2\n    return result - bonus\n",
    )
    .unwrap();
    std::fs::write(dir.join("pkg/broken.py"), "def broken(:\n    pass\n").unwrap();
    std::fs::write(dir.join("pkg/latin1.py"), b"# caf\xe9\ndef f():\n    return 1\n").unwrap();
}

#[test]
fn bad_files_and_bad_scripts_are_reported_and_the_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    repository_with_bad_files(&repo);
    let scripts = dir.path().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    let header = "const EXPLANATION = \"test\";\nconst MIN_COMPLEXITY = 0;\n";
    std::fs::write(
        scripts.join("syntax_error.rhai"),
        format!("{header}fn mutate(entity, params, rng) {{\n    let x = ;\n}}\n"),
    )
    .unwrap();
    std::fs::write(
        scripts.join("forever.rhai"),
        format!("{header}fn mutate(entity, params, rng) {{\n    let n = 0;\n    loop {{ n += 1; }}\n}}\n"),
    )
    .unwrap();
    std::fs::write(
        scripts.join("overlapping.rhai"),
        format!("{header}fn mutate(entity, params, rng) {{\n    [patch::edit(entity.start, entity.start + 5, \"x\"), patch::edit(entity.start + 2, entity.start + 8, \"y\")]\n}}\n"),
    )
    .unwrap();
    let script = |name: &str| scripts.join(name).display().to_string();
    let out = dir.path().join("out");
    let output = bugsmith(
        &[
            "gen",
            repo.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
            "--strategy",
            "func_pm_op_change",
            "--strategy",
            &script("syntax_error.rhai"),
            "--strategy",
            &script("forever.rhai"),
            "--strategy",
            &script("overlapping.rhai"),
        ],
        dir.path(),
    );
    let summary = json(&output);
    let skipped: Vec<String> = summary["skipped_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}: {}", p["location"].as_str().unwrap(), p["message"].as_str().unwrap()))
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped[0].starts_with("pkg/broken.py:1:12: syntax error"), "{}", skipped[0]);
    assert!(skipped[1].starts_with("pkg/latin1.py:1: not UTF-8"), "{}", skipped[1]);
    let errors: Vec<String> = summary["script_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}: {}", p["location"].as_str().unwrap(), p["message"].as_str().unwrap()))
        .collect();
    let find = |needle: &str| {
        errors
            .iter()
            .find(|e| e.contains(needle))
            .unwrap_or_else(|| panic!("no error about {needle} in {errors:#?}"))
            .clone()
    };
    assert!(find("syntax_error.rhai").contains("syntax_error.rhai:4:13:"), "{errors:#?}");
    let forever = find("forever.rhai");
    assert!(forever.contains("forever.rhai:3:1:") && forever.contains("total at pkg/good.py:1"), "{forever}");
    assert!(forever.contains("exceeded 5000000 operations") || forever.contains("longer than"), "{forever}");
    assert!(
        find("overlapping.rhai")
            .contains("overlapping edits: bytes 0..5 (line 1:1 to 1:6) and bytes 2..8 (line 1:3 to 1:9)"),
        "{errors:#?}"
    );
    assert_eq!(summary["strategies"]["func_pm_op_change"]["candidates"], 1);
    assert_eq!(summary["candidates"], 1);
    // The user's directory is untouched: no repository was created in it.
    assert!(!repo.join(".git").exists());
}

#[test]
fn try_prints_the_diff_for_one_entity() {
    let dir = tempfile::tempdir().unwrap();
    repository_with_bad_files(dir.path());
    let file = dir.path().join("pkg/good.py");
    let output =
        bugsmith(&["try", "func_pm_op_change", file.to_str().unwrap(), "--entity", "total", "--seed", "3"], dir.path());
    let text = stdout(&output);
    assert!(output.status.success());
    assert!(
        text.starts_with("# func_pm_op_change on total (good.py:1, complexity 5)\ndiff --git a/good.py b/good.py\n"),
        "{text}"
    );
    assert!(text.contains("\n-    return result - bonus\n+    return result + bonus\n"), "{text}");

    let missing = bugsmith(&["try", "func_pm_op_change", file.to_str().unwrap(), "--entity", "nope"], dir.path());
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no entity named `nope`"));
}

#[test]
fn strategies_list_shows_conditions_and_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    let list = stdout(&bugsmith(&["strategies", "list"], dir.path()));
    assert!(list.contains("func_pm_ctrl_shuffle"), "{list}");
    let line = list.lines().find(|l| l.starts_with("func_pm_ctrl_shuffle ")).unwrap();
    assert!(line.contains("0.25") && line.contains("10") && line.contains("is_function, has_loop"), "{line}");
    let check = bugsmith(&["strategies", "check"], dir.path());
    assert!(check.status.success());
    assert!(stdout(&check).contains("31 scripts load, 0 fail"), "{}", stdout(&check));
}

#[test]
fn a_recipe_sets_params_and_caps() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    repository_with_bad_files(&repo);
    let recipe = dir.path().join("recipe.yaml");
    std::fs::write(&recipe, "version: 1\nseed: 3\nstrategies:\n  - id: func_pm_op_change\n    likelihood: 1.0\n    min_complexity: 0\n  - id: func_pm_remove_loop\n    min_complexity: 99\n").unwrap();
    let out = dir.path().join("out");
    let summary = json(&bugsmith(
        &[
            "gen",
            repo.to_str().unwrap(),
            "--recipe",
            recipe.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    ));
    assert_eq!(summary["strategies"]["func_pm_op_change"]["candidates"], 1);
    assert_eq!(summary["strategies"]["func_pm_remove_loop"]["eligible"], 0);
    assert_eq!(summary["strategies"].as_object().unwrap().len(), 2);

    std::fs::write(&recipe, "strategies:\n  - id: func_pm_op_change\n    likelyhood: 1.0\n").unwrap();
    let bad = bugsmith(
        &["gen", repo.to_str().unwrap(), "--recipe", recipe.to_str().unwrap(), "--out", out.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("unknown key `likelyhood`") && stderr.contains("line 3"), "{stderr}");
}

#[test]
fn try_watch_reruns_when_the_script_changes() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    repository_with_bad_files(dir.path());
    let script = dir.path().join("mine.rhai");
    let write = |text: &str| {
        std::fs::write(&script, format!("const EXPLANATION = \"e\";\nconst MIN_COMPLEXITY = 0;\nfn mutate(entity, params, rng) {{\n    let node = entity.nodes(\"Return\")[0];\n    patch::edit(node, \"{text}\")\n}}\n")).unwrap();
    };
    write("return 111");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bugsmith"))
        .args(["try", script.to_str().unwrap(), dir.path().join("pkg/good.py").to_str().unwrap(), "--watch"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        })
    };
    let wait_for = |needle: &str| {
        for _ in 0..100 {
            if seen.lock().unwrap().contains(needle) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        false
    };
    assert!(wait_for("+    return 111"), "first run: {}", seen.lock().unwrap());
    std::thread::sleep(std::time::Duration::from_millis(50));
    write("return 222");
    let rerun = wait_for("+    return 222");
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    assert!(rerun, "no re-run after the script changed: {}", seen.lock().unwrap());
    let text = seen.lock().unwrap().clone();
    assert!(
        text.contains("\n=====\n") && text.contains(".rhai changed; run again"),
        "runs are separated and name the change: {text}"
    );
}

#[test]
fn gen_on_the_bundled_example_gives_every_strategy_a_candidate_offline() {
    let dir = tempfile::tempdir().unwrap();
    let example = manifest().join("tests/fixtures/repos/inventory");
    let summary = json(&bugsmith(
        &["gen", example.to_str().unwrap(), "--out", dir.path().to_str().unwrap(), "--json"],
        dir.path(),
    ));
    assert!(summary["repo_name"].as_str().unwrap().starts_with("local__inventory."));
    for (id, stats) in summary["strategies"].as_object().unwrap() {
        assert!(stats["candidates"].as_u64().unwrap() >= 1, "{id} made no candidate");
    }
    // The private checkout is a git repository; the bundled directory is not touched.
    assert!(!example.join(".git").exists());
}

#[test]
fn gen_reads_the_named_commit_of_a_git_url_and_what_git_would_commit_of_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("acme").join("widgets");
    repository_with_bad_files(&repo);
    std::fs::remove_file(repo.join("pkg/broken.py")).unwrap();
    std::fs::remove_file(repo.join("pkg/latin1.py")).unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git").arg("-C").arg(&repo).args(args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["init", "-q"]);
    git(&["-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"]);
    git(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first"]);
    let first = git(&["rev-parse", "HEAD"]);
    std::fs::write(
        repo.join("pkg/more.py"),
        "def later(a, b, c):\n    if a and b or c:\n        return a + b\n    return c\n",
    )
    .unwrap();
    git(&["-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"]);
    git(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "second"]);

    let out = dir.path().join("out");
    let url = format!("file://{}@{}", repo.display(), &first[..10]);
    let summary = json(&bugsmith(&["gen", &url, "--out", out.to_str().unwrap(), "--json"], dir.path()));
    assert_eq!(summary["repo_name"], format!("acme__widgets.{}", &first[..8]));
    assert_eq!(summary["files"], 1, "only the first commit's file");

    // A work tree given as a directory: what git would commit, ignored files and venvs left out.
    std::fs::write(repo.join(".gitignore"), "generated.py\n").unwrap();
    std::fs::write(repo.join("generated.py"), "def junk(a, b, c):\n    return a + b + c\n").unwrap();
    std::fs::write(repo.join("pkg/new_untracked.py"), "def fresh(a):\n    return a\n").unwrap();
    std::fs::create_dir_all(repo.join("venv/lib")).unwrap();
    std::fs::write(repo.join("venv/pyvenv.cfg"), "home = /usr\n").unwrap();
    std::fs::write(repo.join("venv/.gitignore"), "*\n").unwrap();
    std::fs::write(repo.join("venv/lib/site.py"), "def site(a):\n    return a\n").unwrap();
    let head = json(&bugsmith(&["gen", repo.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"], dir.path()));
    assert_eq!(head["files"], 3, "good.py, more.py and the untracked new_untracked.py");
    assert!(head["repo_name"].as_str().unwrap().starts_with("local__widgets."));

    // A plain directory: virtual environments and caches are not copied.
    let plain = dir.path().join("plain");
    repository_with_bad_files(&plain);
    std::fs::create_dir_all(plain.join(".venv/lib")).unwrap();
    std::fs::write(plain.join(".venv/pyvenv.cfg"), "home = /usr\n").unwrap();
    std::fs::create_dir_all(plain.join("env/lib")).unwrap();
    std::fs::write(plain.join("env/pyvenv.cfg"), "home = /usr\n").unwrap();
    std::fs::write(plain.join("env/lib/site.py"), "def site(a):\n    return a\n").unwrap();
    let plain_summary =
        json(&bugsmith(&["gen", plain.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"], dir.path()));
    assert_eq!(plain_summary["files"], 1, "only pkg/good.py parses; env/ is a virtual environment");
}

#[test]
fn a_users_strategies_folder_adds_to_and_overrides_the_builtin_set_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("mine");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bugsmith"))
            .args(args)
            .env_remove("BUGSMITH_STRATEGIES")
            .env("BUGSMITH_NO_PROGRESS", "1")
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let export = run(&["strategies", "export", mine.to_str().unwrap()]);
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    assert!(mine.join("procedural/func_pm_op_swap.rhai").is_file() && mine.join("issues/lm.system.md").is_file());
    // ./strategies with one new script and one override of a built-in id.
    let own = dir.path().join("strategies/procedural");
    std::fs::create_dir_all(&own).unwrap();
    let swap = std::fs::read_to_string(mine.join("procedural/func_pm_op_swap.rhai")).unwrap();
    std::fs::write(own.join("my_swap.rhai"), &swap).unwrap();
    std::fs::write(own.join("func_pm_op_swap.rhai"), format!("// mine\n{swap}")).unwrap();
    let list: serde_json::Value =
        serde_json::from_slice(&run(&["strategies", "list", "--json"]).stdout).expect("strategies list --json");
    let rows = list.as_array().unwrap();
    let source = |id: &str| rows.iter().find(|r| r["id"] == id).map(|r| r["source"].as_str().unwrap().to_string());
    assert_eq!(rows.len(), 23, "22 built-ins and one new script: {list:#}");
    assert_eq!(source("func_pm_ctrl_shuffle").as_deref(), Some("built-in"));
    assert!(source("my_swap").unwrap().ends_with("strategies/procedural/my_swap.rhai"));
    assert!(
        source("func_pm_op_swap").unwrap().ends_with("strategies/procedural/func_pm_op_swap.rhai"),
        "overridden by id"
    );
    let text = stdout(&run(&["strategies", "list"]));
    assert!(text.lines().nth(1).unwrap().starts_with("func_pm_"), "the id is the first column: {text}");
    let hermetic: serde_json::Value =
        serde_json::from_slice(&run(&["strategies", "list", "--json", "--no-builtin"]).stdout).unwrap();
    assert_eq!(hermetic.as_array().unwrap().len(), 2, "{hermetic:#}");
    for kind in ["lm", "combine", "mirror", "issues"] {
        let listed = run(&["strategies", "list", "--kind", kind]);
        assert!(listed.status.success(), "{kind}: {}", String::from_utf8_lossy(&listed.stderr));
    }
    let issues = stdout(&run(&["strategies", "list", "--kind", "issues"]));
    assert!(issues.contains("static") && issues.contains("Static templates with SWE-smith's weights"), "{issues}");
    std::fs::write(own.join("bad.name.rhai"), &swap).unwrap();
    let check = run(&["strategies", "check"]);
    assert!(!check.status.success());
    assert!(stdout(&check).contains("may not contain `.`"), "{}", stdout(&check));
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.py");
    let functions: String = (0..400).map(|i| format!("def f{i}(a, b):\n    return a + b - {i}\n\n")).collect();
    std::fs::write(&file, functions).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bugsmith"))
        .args(["try", "func_pm_op_swap", file.to_str().unwrap(), "--all-entities"])
        .env("BUGSMITH_STRATEGIES", manifest().join("strategies"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take()); // as `| head` does
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
}

#[test]
fn script_paths_in_a_recipe_resolve_against_the_recipe_file() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    repository_with_bad_files(&repo);
    let recipes = dir.path().join("recipes");
    std::fs::create_dir_all(recipes.join("mine")).unwrap();
    let swap = std::fs::read_to_string(manifest().join("strategies/procedural/func_pm_op_swap.rhai")).unwrap();
    std::fs::write(recipes.join("mine/my_swap.rhai"), swap).unwrap();
    std::fs::write(recipes.join("r.yaml"), "strategies:\n  - id: mine/my_swap.rhai\n").unwrap();
    let out = dir.path().join("out");
    // Run from elsewhere: the path is the recipe's, not the working directory's.
    let output = Command::new(env!("CARGO_BIN_EXE_bugsmith"))
        .args(["gen", repo.to_str().unwrap(), "--recipe", "recipes/r.yaml", "--out", out.to_str().unwrap(), "--json"])
        .env("BUGSMITH_STRATEGIES", manifest().join("strategies"))
        .env("BUGSMITH_CACHE", dir.path())
        .current_dir(dir.path())
        .output()
        .unwrap();
    let summary = json(&output);
    assert!(summary["strategies"]["my_swap"].is_object(), "{summary:#}");
    let check = stdout(&bugsmith(&["recipe", "check", recipes.join("r.yaml").to_str().unwrap()], dir.path()));
    assert!(check.ends_with(": ok\n") || check.contains("note:"), "{check}");
}

#[test]
fn gen_says_when_earlier_candidates_remain_and_clean_removes_only_procedural_ones() {
    let dir = tempfile::tempdir().unwrap();
    let source = manifest().join("tests/fixtures/repos/inventory");
    let out = dir.path().join("out");
    let generate = |extra: &[&str]| {
        let mut args =
            vec!["gen", source.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json", "--max-bugs", "2"];
        args.extend_from_slice(extra);
        bugsmith(&args, dir.path())
    };
    let first = json(&generate(&["--seed", "1"]));
    let bug_gen = PathBuf::from(first["output"].as_str().unwrap());
    let combined = bug_gen.join("inventory__pricing.py/combined");
    std::fs::create_dir_all(&combined).unwrap();
    std::fs::write(combined.join("bug__combine_file__abcdefgh.diff"), "diff").unwrap();
    let second = generate(&["--seed", "2"]);
    let summary = json(&second);
    assert!(summary["earlier_candidates"].as_u64().unwrap() > 0, "{summary:#}");
    assert!(String::from_utf8_lossy(&second.stderr).contains("`gen --clean` removes them"));
    let cleaned = json(&generate(&["--seed", "2", "--clean"]));
    assert!(cleaned["removed_candidates"].as_u64().unwrap() > 0, "{cleaned:#}");
    let diffs: Vec<String> = walkdir::WalkDir::new(&bug_gen)
        .into_iter()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".diff"))
        .collect();
    assert_eq!(diffs.len() as u64, cleaned["candidates"].as_u64().unwrap() + 1, "{diffs:?}");
    assert!(diffs.contains(&"bug__combine_file__abcdefgh.diff".to_string()), "combined candidates stay");
    let only = json(&generate(&["--file", "inventory/stock.py", "--clean"]));
    assert_eq!(only["files"], 1, "{only:#}");
    let missing = generate(&["--file", "nothing/*.py"]);
    assert!(!missing.status.success() && stderr_of(&missing).contains("no Python source file matches"));
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn run_redoes_a_stage_when_asked_or_when_a_script_or_flag_changes() {
    let dir = tempfile::tempdir().unwrap();
    let source = manifest().join("tests/fixtures/repos/inventory");
    let recipe = dir.path().join("r.yaml");
    std::fs::write(&recipe, format!("source: {}\nstages: [gen]\nmax_bugs: 1\n", source.display())).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", recipe.to_str().unwrap()];
        args.extend_from_slice(extra);
        let output = Command::new(env!("CARGO_BIN_EXE_bugsmith"))
            .args(args)
            .env("BUGSMITH_CACHE", shared_cache())
            .env("BUGSMITH_NO_PROGRESS", "1")
            .env_remove("BUGSMITH_STRATEGIES")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        stdout(&output)
    };
    let ran = |text: &str| text.lines().any(|l| l == "== gen");
    assert!(ran(&run(&[])));
    assert!(!ran(&run(&[])), "a finished stage is skipped");
    assert!(ran(&run(&["--redo", "gen"])));
    assert!(ran(&run(&["--force"])));
    assert!(ran(&run(&["--seed", "5"])), "a flag that changes the stage re-runs it");
    assert!(!ran(&run(&["--seed", "5"])));
    // A script in ./strategies overlaying a built-in changes the stage's inputs.
    let own = dir.path().join("strategies/procedural");
    std::fs::create_dir_all(&own).unwrap();
    let swap = std::fs::read_to_string(manifest().join("strategies/procedural/func_pm_op_swap.rhai")).unwrap();
    std::fs::write(own.join("func_pm_op_swap.rhai"), format!("// edited\n{swap}")).unwrap();
    assert!(ran(&run(&["--seed", "5"])), "editing a script re-runs gen");
    let bad = Command::new(env!("CARGO_BIN_EXE_bugsmith"))
        .args(["run", recipe.to_str().unwrap(), "--redo", "nope"])
        .output()
        .unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("unknown stage"));
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_definition() {
    let dir = tempfile::tempdir().unwrap();
    let bash = stdout(&bugsmith(&["completions", "bash"], dir.path()));
    assert!(
        bash.contains("_bugsmith()") && bash.contains("--no-sandbox") && bash.contains("candidates")
            || bash.contains("validate"),
        "{bash}"
    );
    let zsh = stdout(&bugsmith(&["completions", "zsh"], dir.path()));
    assert!(zsh.starts_with("#compdef bugsmith"), "{zsh}");
    let man = stdout(&bugsmith(&["man"], dir.path()));
    assert!(man.contains(".TH bugsmith 1") && man.contains("validate"), "{man}");
}

#[test]
fn candidates_are_listed_with_filters_and_shown_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let source = manifest().join("tests/fixtures/repos/inventory");
    let out = dir.path().join("out");
    json(&bugsmith(&["gen", source.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"], dir.path()));
    let list = |extra: &[&str]| -> Vec<Value> {
        let mut args = vec!["candidates", "list", "--out", out.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        serde_json::from_slice::<Value>(&bugsmith(&args, dir.path()).stdout).unwrap().as_array().unwrap().clone()
    };
    let all = list(&[]);
    assert!(all.len() > 10, "{all:?}");
    let swaps = list(&["--strategy", "func_pm_op_swap"]);
    assert!(!swaps.is_empty() && swaps.iter().all(|c| c["strategy"] == "func_pm_op_swap"));
    let stock = list(&["--file", "inventory/stock.py"]);
    assert!(!stock.is_empty() && stock.iter().all(|c| c["file"] == "inventory/stock.py"));
    assert_eq!(list(&["--verdict", "none"]).len(), all.len(), "nothing was validated yet");
    assert!(list(&["--verdict", "valid"]).is_empty());
    let id = swaps[0]["instance_id"].as_str().unwrap();
    let shown = stdout(&bugsmith(&["candidates", "show", id, "--out", out.to_str().unwrap()], dir.path()));
    assert!(shown.starts_with("# func_pm_op_swap") && shown.contains("diff --git"), "{shown}");
    assert!(!shown.contains("\x1b["), "no colour when stdout is not a terminal");
    let missing = bugsmith(&["candidates", "show", "nope", "--out", out.to_str().unwrap()], dir.path());
    assert!(!missing.status.success());
}

#[test]
fn a_git_source_is_cloned_once_and_its_checkout_reused() {
    let dir = tempfile::tempdir().unwrap();
    let remote = dir.path().join("remote");
    repository_with_bad_files(&remote);
    common::git(&remote, &["init", "-q"]);
    common::git(&remote, &["add", "."]);
    common::git(&remote, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one"]);
    let sha = common::git(&remote, &["rev-parse", "HEAD"]);
    let cache = dir.path().join("cache");
    let url = format!("file://{}", remote.display());
    let generate = |source: &str| {
        Command::new(env!("CARGO_BIN_EXE_bugsmith"))
            .args(["gen", source, "--out", dir.path().join("out").to_str().unwrap(), "--json", "--max-bugs", "1"])
            .env("BUGSMITH_CACHE", &cache)
            .env("BUGSMITH_STRATEGIES", manifest().join("strategies"))
            .output()
            .unwrap()
    };
    let first = json(&generate(&format!("{url}@{sha}")));
    let head = json(&generate(&url));
    assert_eq!(first["repo_name"], head["repo_name"], "HEAD is the same commit");
    // The remote is gone: a source naming its full commit still works, from the checkout.
    std::fs::rename(&remote, dir.path().join("moved")).unwrap();
    let again = generate(&format!("{url}@{sha}"));
    assert!(again.status.success(), "re-cloned: {}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(json(&again)["repo_name"], first["repo_name"]);
}

#[test]
fn every_run_writes_a_log_under_its_output_and_quiet_hides_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    repository_with_bad_files(&repo);
    let out = dir.path().join("out");
    let loud = bugsmith(&["gen", repo.to_str().unwrap(), "--out", out.to_str().unwrap()], dir.path());
    assert!(String::from_utf8_lossy(&loud.stderr).contains("warning: "), "{}", String::from_utf8_lossy(&loud.stderr));
    let quiet = bugsmith(&["gen", repo.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"], dir.path());
    assert!(quiet.status.success());
    assert!(
        !String::from_utf8_lossy(&quiet.stderr).contains("warning: "),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let log = std::fs::read_to_string(out.join("bugsmith.log")).unwrap();
    assert_eq!(log.matches("==== ").count(), 2, "one header per run: {log}");
    assert!(log.contains(" -q (pid "), "{log}");
    assert_eq!(log.matches("syntax error").count(), 2, "the problems are in the log of both runs: {log}");
}

#[test]
fn gen_writes_the_same_bytes_with_one_thread_or_two() {
    let dir = tempfile::tempdir().unwrap();
    let source = manifest().join("tests/fixtures/repos/inventory");
    let outputs: Vec<BTreeMap<String, Vec<u8>>> = ["1", "2"]
        .iter()
        .map(|jobs| {
            let out = dir.path().join(format!("out-{jobs}"));
            let output =
                bugsmith(&["gen", source.to_str().unwrap(), "--out", out.to_str().unwrap(), "-j", jobs], dir.path());
            assert!(output.status.success());
            tree(&out)
        })
        .collect();
    assert!(outputs[0].len() > 20, "{:?}", outputs[0].keys());
    assert_eq!(outputs[0].keys().collect::<Vec<_>>(), outputs[1].keys().collect::<Vec<_>>());
    assert!(outputs[0] == outputs[1], "the files differ between -j 1 and -j 2");
}

#[test]
fn scripts_import_shared_helpers_from_lib_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let strategies = dir.path().join("strategies");
    std::fs::create_dir_all(strategies.join("procedural")).unwrap();
    std::fs::create_dir_all(strategies.join("lib")).unwrap();
    std::fs::write(strategies.join("lib/twice.rhai"), "fn twice(x) { x * 2 }\n").unwrap();
    let swap = std::fs::read_to_string(manifest().join("strategies/procedural/func_pm_op_swap.rhai")).unwrap();
    let with_import = swap.replacen("const ", "import \"twice\" as h;\nconst LIKELY = h::twice(1);\nconst ", 1);
    std::fs::write(strategies.join("procedural/helped.rhai"), &with_import).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bugsmith"))
            .args(args)
            .env_remove("BUGSMITH_STRATEGIES")
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let check = run(&["strategies", "check"]);
    assert!(check.status.success(), "{}", stdout(&check));
    let list = stdout(&run(&["strategies", "list"]));
    assert!(list.contains("helped") && !list.contains("twice"), "helpers are not strategies: {list}");
    std::fs::write(
        strategies.join("procedural/escape.rhai"),
        swap.replacen("const ", "import \"../procedural/helped\" as h;\nconst ", 1),
    )
    .unwrap();
    let refused = run(&["strategies", "check"]);
    assert!(!refused.status.success());
    assert!(
        stdout(&refused).contains("escape.rhai") && stdout(&refused).to_lowercase().contains("module"),
        "{}",
        stdout(&refused)
    );
}
