//! The built-in repository-level scripts on a fixture repository, against snapshots: the
//! combine scripts' groups and merged patches, and the mirror script undoing a change (and
//! declining one it cannot undo without a model). Through the same typed data the stages hand
//! them.

use std::path::Path;
use std::sync::Arc;

use bugsmith::script::catalog::builtin_origins;
use bugsmith::script::data::{CandidateData, ChangeData, Combo, FilePatch, Params};
use bugsmith::script::repo::{CombineScript, MirrorScript};

const FILES: [(&str, &str); 3] = [
    (
        "pkg/prices.py",
        "def total(price, quantity):\n    return price * quantity\n\n\ndef discount(total, rate):\n    return total - total * rate\n",
    ),
    (
        "pkg/sub/tax.py",
        "def tax(amount):\n    return amount * 0.2\n\n\ndef net(amount):\n    return amount - tax(amount)\n",
    ),
    ("pkg/sub/round.py", "def cents(value):\n    return round(value * 100)\n"),
];

/// A committed fixture repository.
fn repository(dir: &Path) {
    for (path, text) in FILES {
        std::fs::create_dir_all(dir.join(path).parent().unwrap()).unwrap();
        std::fs::write(dir.join(path), text).unwrap();
    }
    bugsmith::git::snapshot(dir, "fixture", false).unwrap();
}

/// A validated bug changing `from` to `to` in `path`.
fn bug(strategy: &str, path: &str, from: &str, to: &str) -> CandidateData {
    let old = FILES.iter().find(|(p, _)| *p == path).unwrap().1;
    assert!(old.contains(from), "{from}");
    let patch = bugsmith::patch::render_diff(path, old, &old.replacen(from, to, 1)).unwrap();
    let id = format!("{strategy}__{}", bugsmith::patch::hash8(&patch));
    CandidateData {
        instance_id: format!("o__r.00000000.{id}"),
        id,
        strategy: strategy.into(),
        files: vec![path.into()],
        patch,
    }
}

fn candidates() -> Vec<CandidateData> {
    vec![
        bug("func_pm_op_change", "pkg/prices.py", "price * quantity", "price / quantity"),
        bug("func_pm_op_swap", "pkg/prices.py", "total * rate", "rate * total"),
        bug("func_pm_op_change", "pkg/prices.py", "total - total", "total + total"),
        bug("func_pm_op_change", "pkg/sub/tax.py", "amount * 0.2", "amount / 0.2"),
        bug("func_pm_op_change", "pkg/sub/tax.py", "amount - tax", "amount + tax"),
        bug("func_pm_remove_cond", "pkg/sub/round.py", "value * 100", "value * 10"),
    ]
}

fn builtin(kind: &str, id: &str) -> bugsmith::script::Origin {
    builtin_origins(kind).into_iter().find(|o| bugsmith::script::catalog::origin_id(o) == id).unwrap()
}

fn params(pairs: &[(&str, i64)]) -> Params {
    let mut params = Params::default();
    for (key, value) in pairs {
        params.set(key, *value);
    }
    params
}

/// The combos as text: folder, parts, and patch of each.
fn render(combos: &[Combo]) -> String {
    combos.iter().map(|c| format!("## {} ← {}\n{}", c.folder, c.parts.join(" + "), c.patch)).collect()
}

#[test]
fn the_builtin_combine_scripts_match_their_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    repository(dir.path());
    for (id, params) in [
        ("combine_file", params(&[("num_patches", 2)])),
        ("combine_module", params(&[("num_patches", 2), ("depth", 2)])),
    ] {
        let script =
            CombineScript::load(Arc::new(bugsmith::script::engine_with_lm(None)), builtin("combine", id)).unwrap();
        let combos = script.run(&candidates(), &params, 24, dir.path().to_path_buf()).unwrap();
        assert!(!combos.is_empty(), "{id} made no combo");
        for combo in &combos {
            assert_eq!(combo.parts.len(), 2, "{id}: {combo:?}");
            let again = bugsmith::git::merge_patches(dir.path(), std::slice::from_ref(&combo.patch)).unwrap();
            assert_eq!(again, combo.patch, "{id}: a merged patch applies to the clean commit as it is");
        }
        let again = script.run(&candidates(), &params, 24, dir.path().to_path_buf()).unwrap();
        assert_eq!(again, combos, "{id}: the same seed makes the same combos");
        insta::assert_snapshot!(format!("combine_script__{id}"), render(&combos));
    }
}

#[test]
fn the_builtin_mirror_script_undoes_a_change_and_declines_one_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    repository(dir.path());
    let script =
        MirrorScript::load(Arc::new(bugsmith::script::engine_with_lm(None)), builtin("mirror", "pr_mirror")).unwrap();
    // The change that made `cents` round: undone by reverse-applying it.
    let (path, new) = FILES[2];
    let patch = bugsmith::patch::render_diff(path, "def cents(value):\n    return int(value * 100)\n", new).unwrap();
    let change = ChangeData {
        id: "pr_7".into(),
        title: "Round cents".into(),
        issue_text: "cents() truncates".into(),
        files: vec![FilePatch { path: path.into(), patch: patch.clone() }],
        patch,
    };
    let undone = script.run(&change, &Params::default(), 24, dir.path().to_path_buf()).unwrap().unwrap();
    assert_eq!(undone.method, "reverse");
    insta::assert_snapshot!("mirror_script__pr_mirror_reverse", undone.patch);
    // A change that added a file cannot be rewritten by a model: nothing.
    let added =
        bugsmith::patch::render_diff("pkg/new.py", "", "x = 1\n").unwrap().replace("--- a/pkg/new.py", "--- /dev/null");
    let other = ChangeData { id: "pr_8".into(), patch: added, ..ChangeData::default() };
    assert_eq!(script.run(&other, &Params::default(), 24, dir.path().to_path_buf()).unwrap(), None);
}
