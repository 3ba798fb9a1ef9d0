//! `bugsmith merge`: campaign outputs (shards) joined into one dataset. Per-repository files
//! are copied (a file two outputs hold differently is reported, the first kept; instance files
//! are joined by id), mirrors are joined branch by branch, `lm_ledger.json` is summed, and
//! `campaign.json`, `task_insts/<name>.jsonl` and `report.html` are written for the whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::context::{Error, Outcome, io};
use crate::records::TaskInstance;

use super::record::CampaignRecord;

/// Files of an output that are about the whole campaign: rewritten, not copied.
fn is_campaign_file(relative: &Path, name: &str) -> bool {
    let text = relative.to_string_lossy();
    text == "campaign.json"
        || text == "report.html"
        || text == "bugsmith.log"
        || text == "lm_ledger.json"
        || text == "campaign.finished"
        || text == format!("task_insts/{name}.json")
        || text == format!("task_insts/{name}.jsonl")
}

/// `bugsmith merge OUT... --out DIR`.
pub fn command(outputs: &[PathBuf], out: &Path) -> Outcome {
    let mut records = Vec::new();
    for output in outputs {
        let path = output.join("campaign.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Usage(format!("{}: {e}: not a campaign output", path.display())))?;
        let record: CampaignRecord =
            serde_json::from_str(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
        records.push(record);
    }
    let name = records[0].name.clone();
    if let Some(other) = records.iter().find(|r| r.name != name) {
        return Err(Error::Usage(format!("the outputs hold different campaigns: {name} and {}", other.name)));
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut problems = Vec::new();
    let mut copied = 0;
    let mut log = String::new();
    let mut ledger: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for output in outputs {
        for entry in walkdir::WalkDir::new(output).into_iter().flatten().filter(|e| e.file_type().is_file()) {
            let relative = entry.path().strip_prefix(output).unwrap_or(entry.path());
            if is_campaign_file(relative, &name) || in_mirror(relative) {
                continue;
            }
            let target = out.join(relative);
            if relative.starts_with("task_insts") {
                join_instances(entry.path(), &target, &mut problems)?;
                continue;
            }
            if target.exists() {
                if std::fs::read(&target).ok() != std::fs::read(entry.path()).ok() {
                    problems.push(format!("{} differs between outputs; the first is kept", relative.display()));
                }
                continue;
            }
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
            }
            std::fs::copy(entry.path(), &target).map_err(io(&target))?;
            copied += 1;
        }
        join_mirrors(output, out, &mut problems)?;
        if let Ok(text) = std::fs::read_to_string(output.join("bugsmith.log")) {
            log.push_str(&text);
        }
        let ledger_file = std::fs::read_to_string(output.join("lm_ledger.json")).ok();
        let usage: BTreeMap<String, BTreeMap<String, f64>> =
            ledger_file.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        for (model, counts) in usage {
            for (key, value) in counts {
                *ledger.entry(model.clone()).or_default().entry(key).or_default() += value;
            }
        }
    }
    if !log.is_empty() {
        let path = out.join("bugsmith.log");
        crate::files::write_atomic(&path, log.as_bytes()).map_err(io(&path))?;
    }
    if !ledger.is_empty() {
        let path = out.join("lm_ledger.json");
        let json = serde_json::to_string_pretty(&ledger).unwrap_or_default();
        crate::files::write_atomic(&path, json.as_bytes()).map_err(io(&path))?;
    }
    let mut merged = CampaignRecord { name: name.clone(), ..CampaignRecord::default() };
    for record in &records {
        merged.shards.extend(record.shards.iter().cloned());
        merged.wall_seconds += record.wall_seconds;
        for repo in &record.repos {
            match merged.repos.iter().position(|r| r.slug == repo.slug) {
                Some(at) => {
                    problems.push(format!("{} is in more than one output; the later one is kept", repo.source));
                    merged.repos[at] = repo.clone();
                }
                None => merged.repos.push(repo.clone()),
            }
        }
    }
    merged.repos.sort_by_key(|r| r.index);
    merged.shards.sort();
    merged.total();
    merged.created_at = super::now();
    super::combine_instances(&merged, out)?;
    let path = out.join("campaign.json");
    let json = serde_json::to_string_pretty(&merged).unwrap_or_default() + "\n";
    crate::files::write_atomic(&path, json.as_bytes()).map_err(io(&path))?;
    super::report::write(&merged, out)?;
    let t = &merged.totals;
    println!(
        "merged {} outputs into {}: {} sources ({} ok, {} partial, {} failed), {} instances; {copied} files copied",
        outputs.len(),
        out.display(),
        t.repos,
        t.ok,
        t.partial,
        t.failed,
        t.instances
    );
    for problem in &problems {
        println!("  {problem}");
    }
    Ok(if problems.is_empty() { crate::EXIT_OK } else { crate::EXIT_SOME_FAILED })
}

/// Whether a path lies inside a mirror repository (joined by branch, not by file).
fn in_mirror(relative: &Path) -> bool {
    relative.starts_with("mirrors") && relative.components().count() > 2
}

/// Instances of `from` joined into `to` by id (the same id twice must be the same instance).
fn join_instances(from: &Path, to: &Path, problems: &mut Vec<String>) -> Result<(), Error> {
    if from.extension().is_some_and(|e| e == "jsonl") {
        return Ok(()); // written with the .json beside it
    }
    let mut joined: BTreeMap<String, TaskInstance> = BTreeMap::new();
    if to.exists() {
        joined.extend(crate::records::read_instances(to)?.into_iter().map(|i| (i.instance_id.clone(), i)));
    }
    for instance in crate::records::read_instances(from)? {
        match joined.get(&instance.instance_id) {
            Some(kept) if kept.patch != instance.patch || kept.fail_to_pass != instance.fail_to_pass => {
                problems.push(format!("{} differs between outputs; the first is kept", instance.instance_id));
            }
            Some(_) => {}
            None => {
                joined.insert(instance.instance_id.clone(), instance);
            }
        }
    }
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let all: Vec<TaskInstance> = joined.into_values().collect();
    crate::records::write_instances(to, &all)?;
    Ok(())
}

/// Every mirror of `output` copied, or its branches pushed into the one already there.
fn join_mirrors(output: &Path, out: &Path, problems: &mut Vec<String>) -> Result<(), Error> {
    let Ok(entries) = std::fs::read_dir(output.join("mirrors")) else { return Ok(()) };
    for entry in entries.flatten() {
        let target = out.join("mirrors").join(entry.file_name());
        let source = crate::git::Mirror::open(&entry.path())?;
        if !target.exists() {
            crate::files::copy_tree(&entry.path(), &target).map_err(io(&target))?;
            continue;
        }
        let target_mirror = crate::git::Mirror::open(&target)?;
        let mut branches = Vec::new();
        for (branch, commit) in source.branch_heads()? {
            match target_mirror.commit_id(&branch) {
                Some(existing) if existing != commit => {
                    problems.push(format!(
                        "{}: branch {branch} differs between outputs; the first is kept",
                        target.display()
                    ));
                }
                Some(_) => {}
                None => branches.push(branch),
            }
        }
        source.push(&target.display().to_string(), &branches, None)?;
    }
    Ok(())
}
