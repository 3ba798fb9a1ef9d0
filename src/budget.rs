//! A budget that follows yield (`budget: {strategy: adaptive, total: N}` in a recipe, for `run`
//! and campaigns): `total` candidates are spent across strategies in rounds of gen and
//! validate. Every strategy that can still make candidates first gets the floor (`floor`,
//! default 1, counted over the whole budget, so rounds smaller than the number of strategies
//! starve none); the first round splits the rest evenly, each later one in proportion to its
//! valid instances per candidate so far (Laplace-smoothed: `(valid + 1) / (validated + 2)`), remainders going by a
//! seeded order — so a seed gives the same spending. A strategy that makes fewer candidates
//! than it was given has run out of entities; what it leaves goes to the others. At most
//! `total` candidates are made, exactly `total` while some strategy can make more.
//!
//! Caps grow per round and `gen` keeps the first `cap` candidates of a seeded order, so each
//! round's candidates include the earlier ones; `validate` runs only the new.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::context::{Context, Error, io};
use crate::settings::{GenSettings, StrategyPlan, ValidateSettings};

/// How the budget was spent.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Spending {
    /// The budget.
    pub total: usize,
    /// Candidates made.
    pub spent: usize,
    /// Each round: what each strategy was given, and why.
    pub rounds: Vec<Round>,
    /// Per strategy at the end: candidates, valid.
    pub strategies: BTreeMap<String, (usize, usize)>,
}

/// One round.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Round {
    /// Candidates given per strategy this round.
    pub given: BTreeMap<String, usize>,
    /// The score each was given by (`None` in the even first round).
    pub scores: BTreeMap<String, f64>,
    /// Candidates made this round.
    pub made: usize,
}

/// Splits `amount` over strategies: first what each still `needs` to reach the budget's floor
/// (one at a time, in `order`, while the amount lasts), the rest in proportion to `weights`
/// (all ≥ 0); remainders go by `order` (a seeded permutation of the names).
pub fn split(
    amount: usize,
    weights: &BTreeMap<String, f64>,
    needs: &BTreeMap<String, usize>,
    order: &[String],
) -> BTreeMap<String, usize> {
    let n = weights.len();
    let mut given: BTreeMap<String, usize> = weights.keys().map(|k| (k.clone(), 0)).collect();
    if n == 0 || amount == 0 {
        return given;
    }
    let ranked: Vec<&String> = order.iter().filter(|o| weights.contains_key(*o)).collect();
    let mut floored = 0;
    while floored < amount {
        let before = floored;
        for name in &ranked {
            if floored < amount && given[*name] < needs.get(*name).copied().unwrap_or(0) {
                *given.get_mut(*name).unwrap_or(&mut 0) += 1;
                floored += 1;
            }
        }
        if floored == before {
            break;
        }
    }
    let rest = amount - floored;
    let sum: f64 = weights.values().sum();
    let mut handed = 0;
    let mut fractions: Vec<(f64, usize, String)> = Vec::new();
    for (name, w) in weights {
        let exact = if sum > 0.0 { rest as f64 * w / sum } else { rest as f64 / n as f64 };
        let whole = exact.floor() as usize;
        *given.get_mut(name).unwrap_or(&mut 0) += whole;
        handed += whole;
        let rank = order.iter().position(|o| o == name).unwrap_or(usize::MAX);
        fractions.push((exact - whole as f64, rank, name.clone()));
    }
    fractions.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, _, name) in fractions.iter().cycle().take(rest - handed) {
        *given.get_mut(name).unwrap_or(&mut 0) += 1;
    }
    given
}

/// Candidates under `<out>/bug_gen/<repo_name>/` per strategy.
fn generated(out: &Path, repo_name: &str) -> BTreeMap<String, usize> {
    candidate_files(out, repo_name).into_iter().map(|(strategy, files)| (strategy, files.len())).collect()
}

/// The `bug__<strategy>__<hash>.diff` files under `<out>/bug_gen/<repo_name>/` per strategy.
fn candidate_files(out: &Path, repo_name: &str) -> BTreeMap<String, std::collections::BTreeSet<PathBuf>> {
    let mut files: BTreeMap<String, std::collections::BTreeSet<PathBuf>> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(out.join("bug_gen").join(repo_name)).into_iter().flatten() {
        let name = entry.file_name().to_string_lossy();
        if let Some(rest) = name.strip_prefix("bug__").and_then(|r| r.strip_suffix(".diff"))
            && let Some((strategy, _)) = rest.rsplit_once("__")
        {
            files.entry(strategy.to_string()).or_default().insert(entry.path().to_path_buf());
        }
    }
    files
}

/// Removes a strategy's candidates of this round beyond its cap (last in name order), with
/// their metadata. `gen` keeps `cap` per strategy, but a diff another strategy now makes first
/// is a duplicate there and replaced, while the earlier file stays: without this the total
/// could be passed.
fn trim_to_caps(
    before: &BTreeMap<String, std::collections::BTreeSet<PathBuf>>,
    after: &BTreeMap<String, std::collections::BTreeSet<PathBuf>>,
    caps: &BTreeMap<String, usize>,
) -> std::io::Result<()> {
    for (strategy, files) in after {
        let excess = files.len().saturating_sub(caps.get(strategy).copied().unwrap_or(0));
        let new: Vec<&PathBuf> =
            files.iter().filter(|f| before.get(strategy).is_none_or(|b| !b.contains(*f))).collect();
        for diff in new.iter().rev().take(excess) {
            let name = diff.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let metadata = diff.with_file_name(name.replacen("bug__", "metadata__", 1).replace(".diff", ".json"));
            std::fs::remove_file(diff)?;
            if metadata.exists() {
                std::fs::remove_file(metadata)?;
            }
        }
    }
    Ok(())
}

/// The strategy id a plan's spec names (a path's file stem).
fn id_of(spec: &str) -> String {
    Path::new(spec).file_stem().map_or_else(|| spec.to_string(), |s| s.to_string_lossy().to_string())
}

/// Runs the rounds: gen then validate, until `total` candidates exist or no strategy can make
/// more. Writes `<out>/runs/<name>.budget.json` and prints how the budget went.
#[allow(clippy::too_many_arguments)]
pub fn run_rounds(
    ctx: &Context,
    profile: &Path,
    generate: &GenSettings,
    validate: &ValidateSettings,
    budget: &crate::recipe::BudgetSection,
    out: &Path,
    name: &str,
) -> Result<Spending, Error> {
    let repo_name = ctx.profile(profile)?.repo_name;
    let plans: Vec<StrategyPlan> = generate.strategies.clone().unwrap_or_else(|| {
        ctx.catalog
            .origins("procedural")
            .iter()
            .map(|o| StrategyPlan {
                spec: crate::script::catalog::origin_id(o),
                overrides: crate::settings::Params::default(),
                max_bugs: None,
            })
            .collect()
    });
    let ids: Vec<String> = plans.iter().map(|p| id_of(&p.spec)).collect();
    let mut order = ids.clone();
    order.sort_by_key(|id| crate::patch::hash8(&format!("{}\n{id}", generate.seed)));
    let rounds = budget.rounds.unwrap_or(4).max(1);
    let floor = budget.floor.unwrap_or(1);
    // A resumed run goes on from the candidates already there.
    let present = generated(out, &repo_name);
    let mut caps: BTreeMap<String, usize> =
        ids.iter().map(|id| (id.clone(), present.get(id).copied().unwrap_or(0))).collect();
    let mut exhausted: Vec<String> = Vec::new();
    let mut spending = Spending { total: budget.total, ..Spending::default() };
    let spent = |caps: &BTreeMap<String, usize>| {
        let counts = generated(out, &repo_name);
        caps.keys().map(|id| counts.get(id).copied().unwrap_or(0)).sum::<usize>()
    };
    for round in 0..rounds + ids.len() + 1 {
        let remaining = budget.total.saturating_sub(spent(&caps));
        let active: Vec<&String> = ids.iter().filter(|id| !exhausted.contains(id)).collect();
        if remaining == 0 || active.is_empty() {
            break;
        }
        let this_round = remaining.div_ceil(rounds.saturating_sub(round).max(1));
        let stats = crate::stats::collect(&[out.to_path_buf()]);
        let scores: BTreeMap<String, f64> = active
            .iter()
            .map(|id| {
                let s = stats.strategies.get(*id);
                let (valid, validated) = s.map_or((0, 0), |s| (s.valid, s.candidates));
                ((*id).clone(), (valid as f64 + 1.0) / (validated as f64 + 2.0))
            })
            .collect();
        let weights = if round == 0 { scores.keys().map(|k| (k.clone(), 1.0)).collect() } else { scores.clone() };
        // The floor holds over the whole budget: what each active strategy was given so far counts.
        let needs: BTreeMap<String, usize> =
            active.iter().map(|id| ((*id).clone(), floor.saturating_sub(caps[*id]))).collect();
        let given = split(this_round, &weights, &needs, &order);
        for (id, extra) in &given {
            *caps.entry(id.clone()).or_default() += extra;
        }
        let mut settings = generate.clone();
        settings.strategies = Some(
            plans
                .iter()
                .zip(&ids)
                .filter(|(_, id)| caps[*id] > 0)
                .map(|(plan, id)| StrategyPlan { max_bugs: Some(caps[id]), ..plan.clone() })
                .collect(),
        );
        let files_before = candidate_files(out, &repo_name);
        let counts_before = generated(out, &repo_name);
        crate::bug_gen::command(ctx, &profile.display().to_string(), &settings, out, false)?;
        let bug_gen = out.join("bug_gen").join(&repo_name);
        trim_to_caps(&files_before, &candidate_files(out, &repo_name), &caps).map_err(io(&bug_gen))?;
        let counts = generated(out, &repo_name);
        for id in &ids {
            if counts.get(id).copied().unwrap_or(0) < caps[id] && !exhausted.contains(id) {
                exhausted.push(id.clone());
            }
        }
        let made = counts.values().sum::<usize>() - counts_before.values().sum::<usize>();
        crate::validate::command(ctx, profile, validate, out, false)?;
        println!(
            "budget round {}: {made} candidates ({})",
            round + 1,
            given.iter().filter(|(_, n)| **n > 0).map(|(id, n)| format!("{id} {n}")).collect::<Vec<_>>().join(", ")
        );
        spending.rounds.push(Round { given, scores: if round == 0 { BTreeMap::new() } else { scores }, made });
    }
    let stats = crate::stats::collect(&[out.to_path_buf()]);
    let counts = generated(out, &repo_name);
    spending.spent = spent(&caps);
    for id in &ids {
        let valid = stats.strategies.get(id).map_or(0, |s| s.valid);
        spending.strategies.insert(id.clone(), (counts.get(id).copied().unwrap_or(0), valid));
    }
    println!(
        "budget: {} of {} candidates over {} rounds; more went to strategies with more valid instances per candidate{}",
        spending.spent,
        spending.total,
        spending.rounds.len(),
        if exhausted.is_empty() { String::new() } else { format!(" ({} ran out of entities)", exhausted.join(", ")) }
    );
    let path = out.join("runs").join(format!("{name}.budget.json"));
    std::fs::create_dir_all(out.join("runs")).map_err(io(out))?;
    let json = serde_json::to_string_pretty(&spending).unwrap_or_default();
    crate::files::write_atomic(&path, json.as_bytes()).map_err(io(&path))?;
    Ok(spending)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, w)| ((*k).to_string(), *w)).collect()
    }

    #[test]
    fn a_split_hands_out_exactly_the_amount_with_a_floor_and_more_to_the_better() {
        let order: Vec<String> = ["b", "a", "c"].iter().map(|s| (*s).to_string()).collect();
        let all =
            |n: usize| -> BTreeMap<String, usize> { ["a", "b", "c"].iter().map(|k| ((*k).to_string(), n)).collect() };
        let given = split(20, &weights(&[("a", 0.9), ("b", 0.1), ("c", 0.5)]), &all(2), &order);
        assert_eq!(given.values().sum::<usize>(), 20);
        assert!(given.values().all(|&g| g >= 2));
        assert!(given["a"] > given["c"] && given["c"] > given["b"], "{given:?}");
        let even = split(7, &weights(&[("a", 1.0), ("b", 1.0), ("c", 1.0)]), &all(0), &order);
        assert_eq!(even.values().sum::<usize>(), 7);
        assert_eq!(even["b"], 3, "the remainder goes by the seeded order: {even:?}");
        assert_eq!(
            split(2, &weights(&[("a", 1.0), ("b", 1.0), ("c", 1.0)]), &all(5), &order).values().sum::<usize>(),
            2
        );
    }

    #[test]
    fn a_strategy_past_its_cap_loses_its_newest_candidates_not_its_earlier_ones() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("bug_gen/r/f__py/e_1");
        std::fs::create_dir_all(&folder).unwrap();
        let write = |name: &str| {
            std::fs::write(folder.join(format!("bug__b__{name}.diff")), "").unwrap();
            std::fs::write(folder.join(format!("metadata__b__{name}.json")), "").unwrap();
        };
        write("aaaa0001");
        let before = candidate_files(dir.path(), "r");
        write("aaaa0002");
        write("aaaa0003");
        let caps: BTreeMap<String, usize> = [("b".to_string(), 2)].into();
        trim_to_caps(&before, &candidate_files(dir.path(), "r"), &caps).unwrap();
        let left: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with("bug__"))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(left, ["bug__b__aaaa0001.diff", "bug__b__aaaa0002.diff"]);
        assert!(!folder.join("metadata__b__aaaa0003.json").exists());
    }

    #[test]
    fn a_round_smaller_than_the_strategies_gives_the_floor_to_those_still_without_it() {
        let order: Vec<String> = ["b", "a", "c"].iter().map(|s| (*s).to_string()).collect();
        let w = weights(&[("a", 0.1), ("b", 0.1), ("c", 0.9)]);
        // `b` and `a` got their one in an earlier round: `c` gets the floor first, then the score decides.
        let needs: BTreeMap<String, usize> =
            [("a", 0), ("b", 0), ("c", 1)].iter().map(|(k, n)| ((*k).to_string(), *n)).collect();
        let given = split(1, &w, &needs, &order);
        assert_eq!(given["c"], 1, "{given:?}");
        // Two rounds of two over three strategies: every one gets its floor of one.
        let needs: BTreeMap<String, usize> = ["a", "b", "c"].iter().map(|k| ((*k).to_string(), 1)).collect();
        let first = split(2, &weights(&[("a", 1.0), ("b", 1.0), ("c", 1.0)]), &needs, &order);
        let needs: BTreeMap<String, usize> =
            first.iter().map(|(k, g)| (k.clone(), 1usize.saturating_sub(*g))).collect();
        let second = split(2, &w, &needs, &order);
        assert!(["a", "b", "c"].iter().all(|k| first[*k] + second[*k] >= 1), "{first:?} {second:?}");
    }
}
