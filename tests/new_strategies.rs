//! The strategies bugsmith adds to SWE-smith's, on two real sdists: each makes candidates on
//! both, and a valid instance (a test that fails with the bug and passes without) on one at
//! least — cachetools has almost no range or slice bounds, toolz almost no handlers to change.

mod common;

use std::collections::BTreeMap;

use common::{bugsmith, json, shared_cache};

const NEW: [&str; 8] = [
    "func_pm_var_misuse",
    "func_pm_attr_misuse",
    "func_pm_call_swap_args",
    "func_pm_bound_off_by_one",
    "func_pm_drop_return",
    "func_pm_except_change",
    "func_pm_default_change",
    "func_pm_flip_bool_kwarg",
];

#[test]
fn on_real_sdists_every_new_strategy_makes_candidates_and_a_valid_instance() {
    let dir = tempfile::tempdir().unwrap();
    let cache = shared_cache();
    let mut valid: BTreeMap<&str, u64> = NEW.iter().map(|id| (*id, 0)).collect();
    for (n, source) in ["pypi:cachetools==5.3.3", "pypi:toolz==0.12.1"].into_iter().enumerate() {
        let profile = dir.path().join(format!("profile{n}.yaml"));
        let p = profile.to_str().unwrap();
        let out = dir.path().join(format!("out{n}"));
        let o = out.to_str().unwrap();
        assert!(bugsmith(&["profile", "init", source, "-o", p], &cache).status.success());
        let mut args = vec!["gen", p, "--out", o, "--max-bugs", "10", "--json"];
        for id in NEW {
            args.extend(["--strategy", id]);
        }
        let made = json(&bugsmith(&args, &cache));
        let producing = NEW.iter().filter(|id| made["strategies"][**id]["candidates"].as_u64() > Some(0)).count();
        assert_eq!(producing, NEW.len(), "{source}: only {producing} new strategies made candidates: {made:#}");
        let summary = json(&bugsmith(&["validate", p, "--out", o, "--json"], &cache));
        let stats = json(&bugsmith(&["stats", o, "--json"], &cache));
        // `stats` agrees with the validation summary, strategy by strategy.
        for id in NEW {
            let verdicts = summary["strategies"][id].as_object().unwrap();
            let reports: u64 = verdicts.values().map(|n| n.as_u64().unwrap()).sum();
            let valid_here = verdicts.get("valid").and_then(|n| n.as_u64()).unwrap_or(0);
            assert_eq!(stats["strategies"][id]["candidates"].as_u64(), Some(reports), "{source} {id}");
            assert_eq!(stats["strategies"][id]["valid"].as_u64(), Some(valid_here), "{source} {id}");
            *valid.get_mut(id).unwrap() += valid_here;
        }
    }
    assert!(valid.values().all(|&v| v > 0), "a new strategy made no valid instance: {valid:?}");
}
