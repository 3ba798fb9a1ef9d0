//! `bugsmith campaign`: many sources in one command. Each source runs the stages of `run` with
//! its own recipe (the campaign's shared settings, then its overrides); a source that fails is
//! recorded with its stage, reason and log, and the rest go on. The next source's profile and
//! environment are prepared while the current one runs. A time budget is shared fairly, in
//! rounds: each source may use its share of what is left (and at most its own cap); sources cut
//! short go round again with what the others left, until the budget ends; then what is valid
//! is gathered and the rest left for the next invocation. Everything is resumable: finished
//! stages and validated candidates are not redone.
//!
//! Output: the stages' usual per-repository files under `<out>`, `<out>/task_insts/<name>.jsonl`
//! (every instance), `<out>/campaign.json` and `<out>/report.html`.

pub mod emit;
pub mod file;
pub mod merge;
pub mod record;
pub mod report;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::context::{Context, Error, Outcome, io};
use crate::run::{Finished, RecipeRun};
use crate::settings::{CampaignFlags, RunFlags, ValidateSettings, defaults};
use file::{Campaign, SourceRun};
use record::{CampaignRecord, RepoRecord, Status};

/// `bugsmith campaign <FILE>`.
pub fn command(ctx: &Context, path: &Path, flags: &CampaignFlags) -> Outcome {
    let campaign = match Campaign::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(crate::EXIT_USAGE);
        }
    };
    if flags.check {
        println!("{}: {} sources, ok", path.display(), campaign.sources.len());
        for source in &campaign.sources {
            println!("  {} (run {})", source.source, source.slug);
        }
        return Ok(crate::EXIT_OK);
    }
    if let Some((kind, dir)) = &flags.emit {
        return emit::command(&campaign, path, *kind, dir);
    }
    if flags.shard.is_some() && flags.out.is_none() {
        return Err(Error::Usage("--shard needs --out: each shard writes an output of its own for `merge`".into()));
    }
    let out = flags.out.clone().or_else(|| campaign.out.clone()).unwrap_or_else(|| PathBuf::from(defaults::OUT));
    std::fs::create_dir_all(&out).map_err(io(&out))?;
    crate::log::to_file(&out);
    let selected: Vec<&SourceRun> = match flags.shard {
        Some((k, n)) => campaign.shard(k, n),
        None => campaign.sources.iter().collect(),
    };
    let started = Instant::now();
    let deadline = flags.time_budget.or(campaign.time_budget).map(|b| started + b);
    let base = crate::recipe::base_of(path);
    let mut record = CampaignRecord {
        name: campaign.name.clone(),
        shards: flags.shard.map(|(k, n)| vec![format!("{k}/{n}")]).unwrap_or_default(),
        ..CampaignRecord::default()
    };
    // Rounds: each source in turn gets its share of what is left of the budget; sources the
    // budget cut short go round again with what the others left, until it runs out.
    let mut used: Vec<Duration> = vec![Duration::ZERO; selected.len()];
    let mut pending: Vec<usize> = (0..selected.len()).collect();
    for round in 1.. {
        std::thread::scope(|scope| -> Result<(), Error> {
            let mut prepared: Option<std::thread::ScopedJoinHandle<'_, f64>> = None;
            for (pos, &i) in pending.iter().enumerate() {
                let source = selected[i];
                // Seconds this source's environment took when it was prepared ahead.
                let ahead = prepared.take().and_then(|h| h.join().ok()).unwrap_or(0.0);
                let cap_left = source.time_budget.map(|cap| cap.saturating_sub(used[i]));
                let share = share(deadline, pending.len() - pos, cap_left);
                let t = &record.totals;
                println!(
                    "\n=== [{}{}/{}] {} (so far {} ok, {} partial, {} failed, {} instances in {:.0} s{})",
                    if round > 1 { format!("round {round}: ") } else { String::new() },
                    pos + 1,
                    pending.len(),
                    source.source,
                    t.ok,
                    t.partial,
                    t.failed,
                    t.instances,
                    started.elapsed().as_secs_f64(),
                    deadline.map_or(String::new(), |d| format!(
                        "; {} of the budget left",
                        humantime::format_duration(Duration::from_secs(
                            d.saturating_duration_since(Instant::now()).as_secs()
                        ))
                    ))
                );
                let turn = Instant::now();
                let mut repo = if deadline.is_some_and(|d| Instant::now() >= d) {
                    RepoRecord {
                        index: source.index,
                        source: source.source.clone(),
                        slug: source.slug.clone(),
                        status: Status::Partial,
                        stage: Some("env".into()),
                        reason: Some("the time budget ran out before it started".into()),
                        ..RepoRecord::default()
                    }
                } else {
                    // The next source's profile and environment, while this one runs.
                    if let Some(&next) = pending.get(pos + 1) {
                        let (base, out, next) = (base.clone(), out.clone(), selected[next]);
                        prepared = Some(scope.spawn(move || prepare(ctx, next, &base, &out, &flags.run)));
                    }
                    let run = RecipeRun {
                        recipe: &source.recipe,
                        text: &source.recipe_text,
                        base: base.clone(),
                        name: source.slug.clone(),
                        out: out.clone(),
                    };
                    let finished = crate::run::run_stages(ctx, &run, &flags.run, share);
                    let mut repo = repo_record(source, &finished, &out);
                    *repo.seconds.entry("env".into()).or_default() += ahead;
                    repo
                };
                used[i] += turn.elapsed();
                println!("=== {}: {}", source.source, describe(&repo));
                // A later round's turn adds to the earlier ones' seconds.
                if let Some(earlier) = record.repos.iter_mut().find(|r| r.index == source.index) {
                    for (stage, seconds) in &earlier.seconds {
                        *repo.seconds.entry(stage.clone()).or_default() += seconds;
                    }
                    *earlier = repo;
                } else {
                    record.repos.push(repo);
                }
                write_record(&mut record, &out, started)?;
            }
            Ok(())
        })?;
        let budget_left = deadline.is_some_and(|d| Instant::now() < d);
        pending.retain(|&i| {
            let status = record.repos.iter().find(|r| r.index == selected[i].index).map(|r| r.status);
            goes_round_again(status, selected[i].time_budget, used[i])
        });
        if !budget_left || pending.is_empty() {
            break;
        }
        println!("\n{} source(s) cut short go round again with the budget the others left", pending.len());
    }
    combine_instances(&record, &out)?;
    write_record(&mut record, &out, started)?;
    report::write(&record, &out)?;
    // What a merge waiting for every shard (a Kubernetes merge Job) looks for.
    let marker = out.join("campaign.finished");
    crate::files::write_atomic(&marker, record.created_at.as_bytes()).map_err(io(&marker))?;
    let t = &record.totals;
    println!(
        "\ncampaign {}: {} sources: {} ok, {} partial, {} failed; {} candidates, {} valid, {} instances in {:.0} s",
        record.name, t.repos, t.ok, t.partial, t.failed, t.candidates, t.valid, t.instances, record.wall_seconds
    );
    println!("  instances: {}", out.join("task_insts").join(format!("{}.jsonl", record.name)).display());
    println!("  report:    {}", out.join("report.html").display());
    Ok(exit_code(&record))
}

/// When a source must stop starting candidates: its fair share of what is left of the budget
/// (split over the sources still to run: what one leaves goes to the rest), at most its cap.
fn share(deadline: Option<Instant>, sources_left: usize, cap: Option<Duration>) -> Option<Instant> {
    let now = Instant::now();
    let fair = deadline.map(|d| now + d.saturating_duration_since(now) / sources_left.max(1) as u32);
    let capped = cap.map(|c| now + c);
    match (fair, capped) {
        (Some(fair), Some(capped)) => Some(fair.min(capped)),
        (fair, capped) => fair.or(capped),
    }
}

/// Whether a source gets another turn while the budget lasts: the budget cut it short, and its
/// own cap (if any) is not used up.
fn goes_round_again(status: Option<Status>, cap: Option<Duration>, used: Duration) -> bool {
    status == Some(Status::Partial) && cap.is_none_or(|cap| used < cap)
}

/// 0: every source ok (or cut short by the budget); 3: some failed; 1: none could run.
fn exit_code(record: &CampaignRecord) -> u8 {
    let t = &record.totals;
    if t.repos == 0 || t.failed == t.repos {
        crate::EXIT_FAILURE
    } else if t.failed > 0 {
        crate::EXIT_SOME_FAILED
    } else {
        crate::EXIT_OK
    }
}

/// A source's profile and environment, made ahead of its turn (the seconds it took); problems
/// show again (and are recorded) when its own stages run.
fn prepare(ctx: &Context, source: &SourceRun, base: &Path, out: &Path, flags: &RunFlags) -> f64 {
    let started = Instant::now();
    let run = RecipeRun {
        recipe: &source.recipe,
        text: &source.recipe_text,
        base: base.to_path_buf(),
        name: source.slug.clone(),
        out: out.to_path_buf(),
    };
    if let Ok(profile_path) = crate::run::ensure_profile(ctx, &run) {
        let backend = ValidateSettings::resolve(&flags.validate_flags(), &source.recipe).backend;
        let _ = crate::setup::env_build_quietly(ctx, &profile_path, backend, out);
    }
    started.elapsed().as_secs_f64()
}

/// What `campaign.json` says of a source after its stages.
fn repo_record(source: &SourceRun, finished: &Finished, out: &Path) -> RepoRecord {
    let mut repo = RepoRecord {
        index: source.index,
        source: source.source.clone(),
        slug: source.slug.clone(),
        seconds: finished.seconds.clone(),
        ..RepoRecord::default()
    };
    repo.repo_name = crate::profile::Profile::load(&finished.profile).ok().map(|p| p.repo_name);
    if let Some(repo_name) = repo.repo_name.clone() {
        record::count_outputs(&mut repo, out, &repo_name);
    }
    match &finished.failed {
        Some((stage, error)) => {
            repo.status = Status::Failed;
            repo.stage = Some(stage.clone());
            repo.reason = Some(error.to_string());
            let log = match (stage.as_str(), &repo.repo_name) {
                ("env", Some(name)) => Path::new("build_images").join("env").join(name).join("build_env.log"),
                _ => PathBuf::from("bugsmith.log"),
            };
            repo.log = Some(log.display().to_string());
        }
        // (A validation that ended with the budget but left nothing undone is not cut short.)
        None if finished.cut.is_some()
            && (repo.validated < repo.candidates || finished.cut.as_deref() != Some("validate")) =>
        {
            repo.status = Status::Partial;
            repo.stage = finished.cut.clone();
            repo.reason = Some(format!(
                "the time budget ran out: {} of {} candidates validated, the rest left for the next run",
                repo.validated, repo.candidates
            ));
        }
        None => {}
    }
    repo
}

/// One line about a source's outcome.
fn describe(repo: &RepoRecord) -> String {
    match repo.status {
        Status::Failed => format!(
            "failed at {}: {}",
            repo.stage.as_deref().unwrap_or("?"),
            repo.reason.as_deref().unwrap_or("").lines().next().unwrap_or("")
        ),
        _ => format!(
            "{}{} candidates, {} valid, {} instances",
            if repo.status == Status::Partial { "partial: " } else { "" },
            repo.candidates,
            repo.valid,
            repo.instances
        ),
    }
}

/// Writes `campaign.json` with fresh totals.
fn write_record(record: &mut CampaignRecord, out: &Path, started: Instant) -> Result<(), Error> {
    record.total();
    record.wall_seconds = started.elapsed().as_secs_f64();
    record.created_at = now();
    let path = out.join("campaign.json");
    let json = serde_json::to_string_pretty(record).unwrap_or_default() + "\n";
    crate::files::write_atomic(&path, json.as_bytes()).map_err(io(&path))
}

/// The time now, RFC 3339.
pub(crate) fn now() -> String {
    crate::gather::rfc3339(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    )
}

/// `task_insts/<name>.jsonl`: every source's instances, sorted by id.
pub(crate) fn combine_instances(record: &CampaignRecord, out: &Path) -> Result<(), Error> {
    let mut all = Vec::new();
    for repo in &record.repos {
        let Some(name) = &repo.repo_name else { continue };
        let path = out.join("task_insts").join(format!("{name}.json"));
        if path.exists() {
            all.extend(crate::records::read_instances(&path)?);
        }
    }
    all.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    all.dedup_by(|a, b| a.instance_id == b.instance_id);
    let dir = out.join("task_insts");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    crate::records::write_instances(&dir.join(format!("{}.json", record.name)), &all)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_gets_a_fair_share_of_what_is_left_and_at_most_its_cap() {
        let now = Instant::now();
        assert_eq!(share(None, 3, None), None);
        let third = share(Some(now + Duration::from_secs(90)), 3, None).unwrap();
        let third = third.duration_since(now);
        assert!(third > Duration::from_secs(29) && third < Duration::from_secs(31), "{third:?}");
        let capped = share(Some(now + Duration::from_secs(90)), 3, Some(Duration::from_secs(10))).unwrap();
        assert!(capped.duration_since(now) <= Duration::from_secs(11));
        assert!(share(None, 1, Some(Duration::from_secs(5))).is_some());
    }

    #[test]
    fn only_sources_the_budget_cut_short_with_cap_left_go_round_again() {
        let (minute, second) = (Duration::from_secs(60), Duration::from_secs(1));
        assert!(goes_round_again(Some(Status::Partial), None, minute));
        assert!(goes_round_again(Some(Status::Partial), Some(minute), second));
        assert!(!goes_round_again(Some(Status::Partial), Some(minute), minute), "its cap is used up");
        assert!(!goes_round_again(Some(Status::Ok), None, second));
        assert!(!goes_round_again(Some(Status::Failed), None, second));
        assert!(!goes_round_again(None, None, second));
    }
}
