//! A budget that follows yield (`budget: {strategy: adaptive, total: N}` in a recipe, for `run`
//! and campaigns): `total` candidates are spent across strategies in rounds of gen and
//! validate. The first round splits its share evenly; each later one gives every strategy that
//! can still make candidates a floor, and the rest in proportion to its valid instances per
//! candidate so far (Laplace-smoothed: `(valid + 1) / (validated + 2)`), remainders going by a
//! seeded order — so a seed gives the same spending. A strategy that makes fewer candidates
//! than it was given has run out of entities; what it leaves goes to the others. At most
//! `total` candidates are made, exactly `total` while some strategy can make more.
//!
//! Caps grow per round and `gen` keeps the first `cap` candidates of a seeded order, so each
//! round's candidates include the earlier ones; `validate` runs only the new.

use std::collections::BTreeMap;
use std::path::Path;

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

/// Splits `amount` over strategies in proportion to `weights` (all ≥ 0), at least `floor`
/// each while there is enough; remainders go by `order` (a seeded permutation of the names).
pub fn split(
    amount: usize,
    weights: &BTreeMap<String, f64>,
    floor: usize,
    order: &[String],
) -> BTreeMap<String, usize> {
    let n = weights.len();
    let mut given: BTreeMap<String, usize> = weights.keys().map(|k| (k.clone(), 0)).collect();
    if n == 0 || amount == 0 {
        return given;
    }
    let floor = floor.min(amount / n);
    for g in given.values_mut() {
        *g = floor;
    }
    let rest = amount - floor * n;
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
    let mut counts = BTreeMap::new();
    for entry in walkdir::WalkDir::new(out.join("bug_gen").join(repo_name)).into_iter().flatten() {
        let name = entry.file_name().to_string_lossy();
        if let Some(rest) = name.strip_prefix("bug__").and_then(|r| r.strip_suffix(".diff"))
            && let Some((strategy, _)) = rest.rsplit_once("__")
        {
            *counts.entry(strategy.to_string()).or_default() += 1;
        }
    }
    counts
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
        let given = split(this_round, &weights, floor, &order);
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
        let counts_before = generated(out, &repo_name);
        crate::bug_gen::command(ctx, &profile.display().to_string(), &settings, out, false)?;
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
        let given = split(20, &weights(&[("a", 0.9), ("b", 0.1), ("c", 0.5)]), 2, &order);
        assert_eq!(given.values().sum::<usize>(), 20);
        assert!(given.values().all(|&g| g >= 2));
        assert!(given["a"] > given["c"] && given["c"] > given["b"], "{given:?}");
        let even = split(7, &weights(&[("a", 1.0), ("b", 1.0), ("c", 1.0)]), 0, &order);
        assert_eq!(even.values().sum::<usize>(), 7);
        assert_eq!(even["b"], 3, "the remainder goes by the seeded order: {even:?}");
        assert_eq!(split(2, &weights(&[("a", 1.0), ("b", 1.0), ("c", 1.0)]), 5, &order).values().sum::<usize>(), 2);
    }
}
