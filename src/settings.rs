//! Settings, resolved once: the defaults in one place, the rule every command follows
//! (command-line flag > recipe > profile > default; a script's own constants sit below the
//! recipe's params), and the typed settings stages take (never clap types). Plain data, no I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How to reach a model. Every field has a default; recipes set what they need.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LmConfig {
    /// Base URL of the OpenAI-compatible API (`…/v1`).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Model name.
    #[serde(default = "default_model")]
    pub model: String,
    /// Environment variable holding the API key.
    #[serde(default = "default_key_env")]
    pub api_key_env: String,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: f64,
    /// Seconds per request.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Retries after a 429, a 5xx or a transport error.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// First backoff in milliseconds (doubles each retry, at most 30 s; `Retry-After` wins).
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
    /// Requests in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Stop making calls once this many dollars are spent (cached answers are free).
    #[serde(default)]
    pub budget_usd: Option<f64>,
    /// Dollars per million prompt and completion tokens, by model.
    #[serde(default)]
    pub prices: BTreeMap<String, (f64, f64)>,
    /// Answer only from the cache; a request not in it is an error.
    #[serde(default)]
    pub replay: bool,
    /// Where responses are cached (default `<cache>/lm`).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
}

fn default_base_url() -> String {
    "https://api.openai.com/v1".into()
}
fn default_model() -> String {
    "gpt-4o".into()
}
fn default_key_env() -> String {
    "OPENAI_API_KEY".into()
}
fn default_timeout() -> u64 {
    120
}
fn default_retries() -> u32 {
    4
}
fn default_backoff() -> u64 {
    1000
}
fn default_concurrency() -> usize {
    4
}

impl Default for LmConfig {
    fn default() -> LmConfig {
        serde_yaml::from_str("{}").unwrap_or_else(|_| unreachable!("all fields have defaults"))
    }
}

/// Every default, in one place.
pub mod defaults {
    /// Seed for sampling and every random stream (SWE-smith's).
    pub const SEED: u64 = 24;
    /// Output directory.
    pub const OUT: &str = "logs";
    /// Issue template.
    pub const TEMPLATE: &str = "static";
    /// Mirror script.
    pub const MIRROR_SCRIPT: &str = "pr_mirror";
    /// Changes a mirror run takes at most.
    pub const MIRROR_LIMIT: usize = 50;
    /// Where mirror changes come from.
    pub const MIRROR_FROM: &str = "history";
    /// GitHub's API.
    pub const GITHUB_API: &str = "https://api.github.com";
    /// Candidates a worker validates before it is replaced.
    pub const RECYCLE_AFTER: usize = 200;
    /// Combine script when none is named.
    pub const COMBINE_SCRIPT: &str = "combine_file";
    /// Name of an evaluation run.
    pub const RUN_ID: &str = "eval";
    /// Address `serve` listens on.
    pub const BIND: &str = "127.0.0.1:8765";
}

/// The first of a flag, the recipe's value and the profile's that is set, else the default.
pub fn pick<T>(flag: Option<T>, recipe: Option<T>, profile: Option<T>, default: T) -> T {
    flag.or(recipe).or(profile).unwrap_or(default)
}

/// What `issue-gen` runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct IssueSettings {
    /// Template id or path.
    pub template: String,
    /// Seed.
    pub seed: u64,
}

/// What `mirror` runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct MirrorSettings {
    /// `history` or `github`.
    pub from: String,
    /// GitHub `owner/name`.
    pub github_repo: Option<String>,
    /// At most this many changes.
    pub limit: usize,
    /// Mirror script id or path.
    pub strategy: String,
    /// Seed.
    pub seed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_beats_the_recipe_which_beats_the_profile_which_beats_the_default() {
        assert_eq!(pick(Some(1), Some(2), Some(3), 4), 1);
        assert_eq!(pick(None, Some(2), Some(3), 4), 2);
        assert_eq!(pick(None, None, Some(3), 4), 3);
        assert_eq!(pick(None::<u32>, None, None, 4), 4);
    }
}
