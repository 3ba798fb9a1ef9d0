//! `bugsmith candidates list|show`: the candidates on disk with their metadata and verdicts.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::context::{Error, Outcome};
use crate::ids::{InstanceId, LocalId};
pub use crate::records::CandidateMetadata;

/// One candidate found on disk.
#[derive(Clone, Debug, Serialize)]
pub struct Listed {
    /// The instance id.
    pub instance_id: String,
    /// The strategy it is counted under.
    pub strategy: String,
    /// Its file (from the metadata), when it has one.
    pub file: Option<String>,
    /// Its entity, when it has one.
    pub entity: Option<String>,
    /// Lines added and removed by the patch.
    pub lines_changed: usize,
    /// The validation verdict, when it was validated.
    pub verdict: Option<String>,
    /// The patch file.
    pub path: PathBuf,
}

/// Which candidates to list.
#[derive(Debug, Default)]
pub struct Filter {
    /// Strategy id.
    pub strategy: Option<String>,
    /// Glob on the entity's file.
    pub file: Option<globset::GlobMatcher>,
    /// Entity name (dotted or last part).
    pub entity: Option<String>,
    /// Verdict (`valid`, …, or `none` for candidates not validated).
    pub verdict: Option<String>,
}

/// Every candidate under `<out>/bug_gen/`, of every repository, that passes `filter`.
pub fn list(out: &Path, filter: &Filter) -> Vec<Listed> {
    let mut found = Vec::new();
    let Ok(repos) = std::fs::read_dir(out.join("bug_gen")) else { return found };
    let mut repos: Vec<PathBuf> = repos.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    repos.sort();
    for repo in repos {
        let repo_name = repo.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        for entry in walkdir::WalkDir::new(&repo).sort_by_file_name().into_iter().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(local) = name.strip_prefix("bug__").and_then(|n| n.strip_suffix(".diff")) else { continue };
            let id = InstanceId::new(&repo_name, LocalId::parse(local));
            let metadata = CandidateMetadata::read(&entry.path().with_file_name(format!("metadata__{local}.json")))
                .unwrap_or_default();
            let patch = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let report = out.join("run_validation").join(&repo_name).join(id.to_string()).join("report.json");
            let verdict = std::fs::read_to_string(report)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|r| r["verdict"].as_str().map(str::to_string));
            let listed = Listed {
                instance_id: id.to_string(),
                strategy: id.strategy().to_string(),
                file: metadata.file.clone(),
                entity: metadata.entity.clone(),
                lines_changed: crate::patch::changes_of(&patch).iter().map(|c| c.added + c.removed).sum(),
                verdict,
                path: entry.into_path(),
            };
            if filter.accepts(&listed) {
                found.push(listed);
            }
        }
    }
    found
}

impl Filter {
    fn accepts(&self, c: &Listed) -> bool {
        let entity_matches = |wanted: &String| {
            c.entity.as_deref().is_some_and(|e| e == wanted || e.rsplit('.').next() == Some(wanted.as_str()))
        };
        self.strategy.as_ref().is_none_or(|s| &c.strategy == s)
            && self.file.as_ref().is_none_or(|g| c.file.as_deref().is_some_and(|f| g.is_match(f)))
            && self.entity.as_ref().is_none_or(entity_matches)
            && self.verdict.as_ref().is_none_or(|v| c.verdict.as_deref().unwrap_or("none") == v)
    }
}

/// The patch file of `spec`: a path to a `bug__*.diff`, or an instance id found under `out`.
pub fn find(out: &Path, spec: &str) -> Result<PathBuf, Error> {
    let path = Path::new(spec);
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    list(out, &Filter::default()).into_iter().find(|c| c.instance_id == spec).map(|c| c.path).ok_or_else(|| {
        Error::Usage(format!(
            "no candidate `{spec}` under {} (a path or an instance id)",
            out.join("bug_gen").display()
        ))
    })
}

/// `bugsmith candidates list`.
pub fn list_command(out: &Path, filter: &Filter, json: bool) -> Outcome {
    let found = list(out, filter);
    if json {
        println!("{}", serde_json::to_string_pretty(&found).unwrap_or_default());
        return Ok(crate::EXIT_OK);
    }
    for c in &found {
        println!(
            "{:<60} {:<16} {:>4}  {}",
            c.instance_id,
            c.verdict.as_deref().unwrap_or("-"),
            c.lines_changed,
            match (&c.file, &c.entity) {
                (Some(f), Some(e)) => format!("{f} {e}"),
                _ => String::new(),
            }
        );
    }
    println!("{} candidates", found.len());
    Ok(crate::EXIT_OK)
}

/// `bugsmith candidates show`: a candidate's metadata and diff (coloured on a terminal).
pub fn show_command(out: &Path, candidate: &str) -> Outcome {
    let path = find(out, candidate)?;
    let diff = std::fs::read_to_string(&path).map_err(crate::context::io(&path))?;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let metadata_path = path.with_file_name(name.replacen("bug__", "metadata__", 1).replace(".diff", ".json"));
    if let Some(m) = CandidateMetadata::read(&metadata_path) {
        println!("# {} ({})", m.strategy, path.display());
        if let (Some(file), Some(entity)) = (&m.file, &m.entity) {
            println!("# {entity} in {file}:{}", m.line_start.unwrap_or(0));
        }
        if !m.explanation.is_empty() {
            println!("# {}", m.explanation);
        }
    }
    crate::console::print_diff(&diff);
    Ok(crate::EXIT_OK)
}
