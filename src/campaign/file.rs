//! Campaign files: many sources, the settings of a `run` recipe shared by all of them, per-source
//! overrides, and where the output and cluster jobs go. Each source becomes a recipe of its own
//! (shared keys, then its overrides), checked like any recipe; problems name their line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value;

use crate::recipe::{Recipe, RecipeError, key_line};
use crate::settings::parse_duration;

/// Keys that belong to the campaign, not to the recipe each source gets.
const CAMPAIGN_KEYS: [&str; 6] = ["sources", "sources_file", "time_budget", "emit", "name", "out"];
/// Recipe keys a source entry cannot override (the campaign sets them).
const FIXED_PER_SOURCE: [&str; 3] = ["name", "out", "stages"];

/// A campaign file, read and checked.
#[derive(Clone, Debug)]
pub struct Campaign {
    /// The campaign's name (`task_insts/<name>.jsonl`); default: the file stem.
    pub name: String,
    /// Output directory from the file, relative to the current directory.
    pub out: Option<PathBuf>,
    /// Wall-clock budget for the whole campaign.
    pub time_budget: Option<Duration>,
    /// The sources, in order.
    pub sources: Vec<SourceRun>,
    /// `emit:` settings for cluster jobs.
    pub emit: Emit,
}

/// One source of a campaign, with the recipe it runs.
#[derive(Clone, Debug)]
pub struct SourceRun {
    /// Position in the campaign's sources (0-based).
    pub index: usize,
    /// The source as written (directory, git URL, `pypi:` spec).
    pub source: String,
    /// Run name: a slug of the source, unique in the campaign (`<out>/runs/<slug>.json`).
    pub slug: String,
    /// The recipe text (shared settings, then this source's overrides).
    pub recipe_text: String,
    /// The recipe parsed.
    pub recipe: Recipe,
    /// This source's own cap on wall-clock time.
    pub time_budget: Option<Duration>,
}

/// `emit:`: how cluster jobs are written.
#[derive(Clone, Debug, Default, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Emit {
    /// Shards (array tasks, completion indices); default 2.
    #[serde(default)]
    pub shards: Option<usize>,
    /// Output path every shard and the merge can reach (a shared volume); required by `--emit`.
    #[serde(default)]
    pub shared_dir: Option<String>,
    /// Container image with bugsmith and Python (Kubernetes).
    #[serde(default)]
    pub image: Option<String>,
    /// Slurm partition.
    #[serde(default)]
    pub partition: Option<String>,
    /// CPUs per shard.
    #[serde(default)]
    pub cpus: Option<usize>,
    /// Memory per shard (`8G`).
    #[serde(default)]
    pub memory: Option<String>,
    /// Time limit per shard (`4:00:00`, Slurm's form).
    #[serde(default)]
    pub time_limit: Option<String>,
    /// PersistentVolumeClaim mounted at `shared_dir` (Kubernetes).
    #[serde(default)]
    pub volume_claim: Option<String>,
    /// The bugsmith command on the nodes (default `bugsmith`).
    #[serde(default)]
    pub bugsmith: Option<String>,
    /// Whether the local backend's sandbox runs on the nodes (default: yes on Slurm, no in pods).
    #[serde(default)]
    pub sandbox: Option<bool>,
    /// How long the Kubernetes merge waits for shards that neither finish nor fail their
    /// attempts (a pod lost with its node), then merges those that finished (default 24h).
    #[serde(default, deserialize_with = "duration_text")]
    pub merge_wait: Option<Duration>,
}

/// A duration as people write it (`90m`, `24h`) or seconds.
fn duration_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    match <Value as serde::Deserialize>::deserialize(deserializer)? {
        Value::Number(n) => Ok(n.as_u64().map(Duration::from_secs)),
        Value::String(s) => parse_duration(&s).map(Some).map_err(serde::de::Error::custom),
        _ => Err(serde::de::Error::custom("expected a duration (90m, 2h, 45s)")),
    }
}

impl Campaign {
    /// Reads a campaign file; every problem with its line.
    pub fn load(path: &Path) -> Result<Campaign, RecipeError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| RecipeError { path: shown.clone(), problems: vec![(0, e.to_string())] })?;
        let base = crate::recipe::base_of(path);
        let stem = path.file_stem().map_or("campaign".into(), |s| s.to_string_lossy().to_string());
        Campaign::parse(&shown, &text, &base, &stem)
    }

    /// Parses a campaign's text; relative paths start at `base`.
    pub fn parse(path: &str, text: &str, base: &Path, stem: &str) -> Result<Campaign, RecipeError> {
        let mut problems = Vec::new();
        let document: Value = serde_yaml::from_str(text).map_err(|e| RecipeError {
            path: path.into(),
            problems: vec![(e.location().map_or(0, |l| l.line()), e.to_string())],
        })?;
        let Some(top) = document.as_mapping() else {
            return Err(RecipeError {
                path: path.into(),
                problems: vec![(1, "a campaign is a map of settings".into())],
            });
        };
        let get = |key: &str| top.get(key);
        let line = |key: &str| key_line(text, 0, key);
        // The shared settings are checked as a recipe with the campaign's own keys blanked out,
        // so its problems keep their lines.
        let shared_text = blank_keys(text, &CAMPAIGN_KEYS);
        if let Err(e) = Recipe::parse(path, &shared_text) {
            problems.extend(e.problems);
        }
        let mut shared = top.clone();
        for key in CAMPAIGN_KEYS {
            shared.remove(key);
        }
        let name = match get("name") {
            None => stem.to_string(),
            Some(Value::String(s)) if !s.is_empty() && !s.contains('/') => s.clone(),
            Some(_) => {
                problems.push((line("name"), "name: expected text without `/`".into()));
                stem.to_string()
            }
        };
        let out = match get("out") {
            None => None,
            Some(Value::String(s)) => Some(PathBuf::from(s)),
            Some(_) => {
                problems.push((line("out"), "out: expected a path".into()));
                None
            }
        };
        let duration = |value: Option<&Value>, at: usize, problems: &mut Vec<(usize, String)>| match value {
            None => None,
            Some(Value::Number(n)) => n.as_u64().map(Duration::from_secs),
            Some(Value::String(s)) => {
                parse_duration(s).map_err(|e| problems.push((at, format!("time_budget: {e}")))).ok()
            }
            Some(_) => {
                problems.push((at, "time_budget: expected a duration (90m, 2h, 45s)".into()));
                None
            }
        };
        let time_budget = duration(get("time_budget"), line("time_budget"), &mut problems);
        let emit = match get("emit") {
            None => Emit::default(),
            Some(value) => serde_yaml::from_value::<Emit>(value.clone()).unwrap_or_else(|e| {
                problems
                    .push((line("emit"), format!("emit: {}", e.to_string().replace("unknown field", "unknown key"))));
                Emit::default()
            }),
        };
        // Sources: the list, then the file's lines.
        let mut entries: Vec<(Value, usize)> = Vec::new();
        match get("sources") {
            None | Some(Value::Null) => {}
            Some(Value::Sequence(list)) => {
                let start = line("sources");
                for (nth, entry) in list.iter().enumerate() {
                    entries.push((entry.clone(), entry_line(text, start, nth)));
                }
            }
            Some(_) => problems.push((line("sources"), "sources: expected a list".into())),
        }
        match get("sources_file") {
            None => {}
            Some(Value::String(file)) => {
                let file_path = base.join(file);
                match std::fs::read_to_string(&file_path) {
                    Ok(list) => {
                        for (nth, l) in list.lines().enumerate() {
                            let l = l.trim();
                            if !l.is_empty() && !l.starts_with('#') {
                                entries.push((Value::String(l.to_string()), nth + 1));
                            }
                        }
                    }
                    Err(e) => {
                        problems.push((line("sources_file"), format!("sources_file: {}: {e}", file_path.display())));
                    }
                }
            }
            Some(_) => problems.push((line("sources_file"), "sources_file: expected a path".into())),
        }
        if entries.is_empty() && problems.is_empty() {
            problems.push((line("sources").max(1), "no sources: give `sources:` (a list) or `sources_file:`".into()));
        }
        let mut sources: Vec<SourceRun> = Vec::new();
        for (entry, at) in entries {
            let mut recipe = shared.clone();
            let mut overrides = serde_yaml::Mapping::new();
            let mut own_budget = None;
            let source = match entry {
                Value::String(s) => s,
                Value::Mapping(map) => {
                    let Some(Value::String(source)) = map.get("source") else {
                        problems.push((at, "a source entry needs `source:`".into()));
                        continue;
                    };
                    let source = source.clone();
                    for (key, value) in map {
                        let k = key.as_str().unwrap_or_default();
                        if k == "source" {
                            continue;
                        } else if k == "time_budget" {
                            own_budget = duration(Some(&value), at, &mut problems);
                        } else if FIXED_PER_SOURCE.contains(&k) || CAMPAIGN_KEYS.contains(&k) {
                            problems
                                .push((at, format!("source {source}: `{k}` is set by the campaign, not per source")));
                        } else if k == "profile" {
                            let p = value.as_str().map_or_else(String::new, |p| absolute(base, p));
                            recipe.insert(key, Value::String(p));
                            overrides.insert("profile".into(), value);
                        } else {
                            overrides.insert(key.clone(), value.clone());
                            recipe.insert(key, value);
                        }
                    }
                    source
                }
                _ => {
                    problems.push((at, "a source is text or a map with `source:`".into()));
                    continue;
                }
            };
            // The overrides on their own, so their problems are found even when shared ones exist.
            let own_text = serde_yaml::to_string(&Value::Mapping(overrides)).unwrap_or_default();
            if let Err(e) = Recipe::parse(path, &own_text) {
                for (_, problem) in e.problems {
                    problems.push((at, format!("source {source}: {problem}")));
                }
                continue;
            }
            let mut slug = slug_of(&source);
            if sources.iter().any(|s| s.slug == slug) {
                slug = format!("{slug}-{}", sources.len() + 1);
            }
            recipe.insert("name".into(), Value::String(slug.clone()));
            recipe.insert("source".into(), Value::String(absolute_source(base, &source)));
            recipe.shift_remove("stages");
            let recipe_text = serde_yaml::to_string(&Value::Mapping(recipe)).unwrap_or_default();
            match Recipe::parse(&format!("{path} (source {source})"), &recipe_text) {
                Ok(parsed) => sources.push(SourceRun {
                    index: sources.len(),
                    source,
                    slug,
                    recipe_text,
                    recipe: parsed,
                    time_budget: own_budget,
                }),
                // Shared problems were reported above with their lines.
                Err(_) if !problems.is_empty() => {}
                Err(e) => {
                    for (_, problem) in e.problems {
                        problems.push((at, format!("source {source}: {problem}")));
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(Campaign { name, out, time_budget, sources, emit })
        } else {
            problems.sort();
            problems.dedup();
            Err(RecipeError { path: path.into(), problems })
        }
    }

    /// The sources shard `k` of `n` (1-based) runs: every n-th, starting at the k-th.
    pub fn shard(&self, k: usize, n: usize) -> Vec<&SourceRun> {
        self.sources.iter().enumerate().filter(|(i, _)| i % n == k - 1).map(|(_, s)| s).collect()
    }
}

/// The text with the given top-level keys (and their indented values) replaced by blank
/// lines, so what is left keeps its line numbers.
fn blank_keys(text: &str, keys: &[&str]) -> String {
    let mut blanking = false;
    let mut kept = String::new();
    for line in text.lines() {
        let top_level = !line.starts_with([' ', '\t', '-']) && !line.trim().is_empty() && !line.starts_with('#');
        if top_level {
            let key = line.split(':').next().unwrap_or("").trim();
            blanking = keys.contains(&key);
        }
        if !blanking {
            kept.push_str(line);
        }
        kept.push('\n');
    }
    kept
}

/// 1-based line of the `nth` list entry after line `start`.
fn entry_line(text: &str, start: usize, nth: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(start)
        .filter(|(_, l)| l.trim_start().starts_with("- "))
        .nth(nth)
        .map_or(start, |(i, _)| i + 1)
}

/// A file-system-safe run name for a source.
pub fn slug_of(source: &str) -> String {
    let trimmed = source.trim_end_matches('/').trim_end_matches(".git");
    let tail = if trimmed.starts_with("pypi:") {
        trimmed.trim_start_matches("pypi:")
    } else {
        trimmed.rsplit('/').next().unwrap_or(trimmed)
    };
    let slug: String = tail
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' { c } else { '-' })
        .collect();
    let mut slug = slug.trim_matches('-').to_string();
    while slug.contains("--") {
        slug = slug.replace("--", "-");
    }
    if slug.is_empty() { "source".into() } else { slug }
}

/// A relative path made absolute from `base`.
fn absolute(base: &Path, path: &str) -> String {
    if Path::new(path).is_absolute() {
        return path.to_string();
    }
    let joined = base.join(path);
    std::path::absolute(&joined).unwrap_or(joined).display().to_string()
}

/// A source with a relative directory made absolute (URLs and `pypi:` specs as they are).
fn absolute_source(base: &Path, source: &str) -> String {
    let (path, rev) = source.rsplit_once('@').filter(|(p, _)| !p.contains("://")).unwrap_or((source, ""));
    if source.contains("://") || source.starts_with("pypi:") || source.starts_with("git@") || !base.join(path).exists()
    {
        return source.to_string();
    }
    let path = absolute(base, path);
    if rev.is_empty() { path } else { format!("{path}@{rev}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::parse_shard;

    fn parse(text: &str) -> Result<Campaign, RecipeError> {
        Campaign::parse("c.yaml", text, Path::new("/nowhere"), "c")
    }

    #[test]
    fn sources_get_the_shared_settings_and_their_own_overrides() {
        let c = parse(
            "version: 1\nname: ten\nmax_bugs: 5\nvalidate:\n  jobs: 2\nsources:\n  - pypi:attrs==23.1.0\n  - source: pypi:tinydb==4.8.0\n    max_bugs: 2\n    time_budget: 10m\n",
        )
        .unwrap();
        assert_eq!(c.name, "ten");
        assert_eq!(c.sources.len(), 2);
        assert_eq!(c.sources[0].recipe.max_bugs, Some(5));
        assert_eq!(c.sources[1].recipe.max_bugs, Some(2));
        assert_eq!(c.sources[1].recipe.validate.jobs, Some(2));
        assert_eq!(c.sources[1].time_budget, Some(Duration::from_secs(600)));
        assert_eq!(c.sources[0].slug, "attrs-23.1.0");
        assert_eq!(c.sources[0].recipe.source.as_deref(), Some("pypi:attrs==23.1.0"));
    }

    #[test]
    fn unknown_keys_are_named_with_their_lines() {
        let e = parse("version: 1\nmax_bug: 5\nsources:\n  - a\n  - source: b\n    colour: red\nemit:\n  nodes: 3\n")
            .unwrap_err();
        let lines: Vec<usize> = e.problems.iter().map(|p| p.0).collect();
        assert!(e.problems.iter().any(|(l, p)| *l == 2 && p.contains("max_bug")), "{:?}", e.problems);
        assert!(e.problems.iter().any(|(l, p)| *l == 5 && p.contains("colour")), "{:?}", e.problems);
        assert!(e.problems.iter().any(|(l, p)| *l == 7 && p.contains("nodes")), "{:?}", e.problems);
        assert_eq!(lines.len(), 3, "{:?}", e.problems);
    }

    #[test]
    fn a_campaign_without_sources_says_so() {
        let e = parse("version: 1\nmax_bugs: 3\n").unwrap_err();
        assert!(e.problems[0].1.contains("no sources"), "{:?}", e.problems);
    }

    #[test]
    fn shards_split_whole_sources_and_together_cover_all_once() {
        let c = parse("sources: [a, b, c, d, e]\n").unwrap();
        let mut seen: Vec<String> = (1..=2).flat_map(|k| c.shard(k, 2)).map(|s| s.source.clone()).collect();
        seen.sort();
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);
        assert_eq!(c.shard(1, 2).len(), 3);
        assert_eq!(parse_shard("2/2"), Ok((2, 2)));
        assert!(parse_shard("0/2").is_err() && parse_shard("3/2").is_err() && parse_shard("x").is_err());
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2h 30m"), Ok(Duration::from_secs(9000)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn slugs_are_unique_and_safe() {
        assert_eq!(slug_of("https://github.com/o/repo.git"), "repo");
        assert_eq!(slug_of("pypi:networkx==3.2.1"), "networkx-3.2.1");
        let c = parse("sources: [/x/a, /y/a]\n").unwrap();
        assert_ne!(c.sources[0].slug, c.sources[1].slug);
    }
}
