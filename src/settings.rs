//! Settings types shared by the recipe (which reads them) and the stages and adapters that
//! use them; plain data, no I/O.

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
