//! Language models: the only module that does HTTP (reqwest). OpenAI-compatible chat
//! completions with retries and backoff on 429/5xx and transport errors, a concurrency limit,
//! timeouts, a ledger of tokens and cost per model, a budget cap that stops new calls cleanly,
//! an on-disk response cache keyed by the request (re-runs cost nothing) and a replay mode that
//! never touches the network. The API key is read from an environment variable and never logged.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, Once};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::files::write_atomic;
pub use crate::settings::LmConfig;

/// One chat message.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// What a call returned.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Reply {
    /// The first choice's text.
    pub content: String,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Dollars this call cost (0 when it came from the cache).
    pub cost: f64,
    /// Whether it came from the cache.
    #[serde(default)]
    pub cached: bool,
}

/// A call failed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LmError {
    /// The budget is spent; no new calls are made.
    #[error("the language-model budget of ${budget:.2} is spent (${spent:.4} so far); no more calls")]
    BudgetExhausted {
        /// The cap.
        budget: f64,
        /// Spent so far.
        spent: f64,
    },
    /// Replay mode and the request was never recorded.
    #[error("no recorded response for this request (replay mode; key {0})")]
    NotRecorded(String),
    /// The server answered with something that is not a chat completion.
    #[error("malformed response from {url}: {reason}")]
    Malformed {
        /// The endpoint.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// An HTTP error that retries did not cure.
    #[error("request to {url} failed after {attempts} attempts: {reason}")]
    Failed {
        /// The endpoint.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        reason: String,
    },
    /// No API key in the environment (and not in replay mode).
    #[error("no API key: set ${0}")]
    NoKey(String),
    /// A budget was set but the model has no price, so spending could not be counted.
    #[error(
        "a budget is set but lm.prices has no price for model `{0}`: add `{0}: [input, output]` (dollars per million tokens) to the recipe"
    )]
    NoPrice(String),
    /// The key would go in clear text to another machine.
    #[error(
        "refusing to send ${var} in clear text to {url}: use https, or name an unset variable with --lm-key-env if the server needs no key"
    )]
    Insecure {
        /// The server.
        url: String,
        /// The key's variable.
        var: String,
    },
}

/// List prices (dollars per million prompt and completion tokens) of common models, used when
/// `prices` does not name the model.
const KNOWN_PRICES: [(&str, (f64, f64)); 4] =
    [("gpt-4o", (2.5, 10.0)), ("gpt-4o-mini", (0.15, 0.6)), ("gpt-4.1", (2.0, 8.0)), ("gpt-4.1-mini", (0.4, 1.6))];

impl LmConfig {
    /// The model's price: from `prices`, else from the known list prices.
    pub fn price(&self) -> Option<(f64, f64)> {
        self.prices.get(&self.model).copied().or_else(|| {
            let model = self.model.rsplit('/').next().unwrap_or(&self.model);
            KNOWN_PRICES.iter().find(|(name, _)| *name == model).map(|(_, price)| *price)
        })
    }
}

/// Tokens and dollars per model.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Usage {
    /// Calls sent to the server.
    pub calls: u64,
    /// Answers taken from the cache.
    pub cached: u64,
    /// Prompt tokens of sent calls.
    pub prompt_tokens: u64,
    /// Completion tokens of sent calls.
    pub completion_tokens: u64,
    /// Dollars.
    pub cost: f64,
}

/// A client: thread-safe, shared by every script and stage of a run.
pub struct LmClient {
    config: LmConfig,
    http: reqwest::blocking::Client,
    cache_dir: PathBuf,
    ledger: Mutex<BTreeMap<String, Usage>>,
    slots: (Mutex<usize>, Condvar),
}

pub(crate) fn install_tls_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    messages: &'a [Message],
    temperature: f64,
}

impl LmClient {
    /// A client; `default_cache` is used when the config names no cache directory.
    pub fn new(config: LmConfig, default_cache: PathBuf) -> Result<LmClient, LmError> {
        install_tls_provider();
        let mut builder = reqwest::blocking::Client::builder().timeout(Duration::from_secs(config.timeout_secs.max(1)));
        // A server on this machine is reached directly: a proxy from the environment would see
        // the request, key included, in clear text.
        if reqwest::Url::parse(&config.base_url).is_ok_and(|url| is_loopback(&url)) {
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| LmError::Failed {
            url: config.base_url.clone(),
            attempts: 0,
            reason: e.to_string(),
        })?;
        let cache_dir = config.cache_dir.clone().unwrap_or(default_cache);
        Ok(LmClient { config, http, cache_dir, ledger: Mutex::default(), slots: (Mutex::new(0), Condvar::new()) })
    }

    /// The configuration.
    pub fn config(&self) -> &LmConfig {
        &self.config
    }

    /// Tokens and cost so far, by model.
    pub fn ledger(&self) -> BTreeMap<String, Usage> {
        self.ledger.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Dollars spent so far.
    pub fn spent(&self) -> f64 {
        self.ledger().values().map(|u| u.cost).sum()
    }

    fn cache_key(&self, request: &Request<'_>) -> String {
        let canonical = serde_json::json!([request.model, request.messages, request.temperature]);
        let text = canonical.to_string();
        format!("{}{}", crate::patch::sha256_hex8(&text), crate::patch::hash8(&text))
    }

    /// Sends a chat completion (or answers it from the cache).
    pub fn chat(&self, messages: &[Message], temperature: Option<f64>) -> Result<Reply, LmError> {
        let request = Request {
            model: &self.config.model,
            messages,
            temperature: temperature.unwrap_or(self.config.temperature),
        };
        let key = self.cache_key(&request);
        let path = self.cache_dir.join(format!("{key}.json"));
        if let Some(mut reply) =
            std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str::<Reply>(&t).ok())
        {
            reply.cached = true;
            reply.cost = 0.0;
            if let Ok(mut ledger) = self.ledger.lock() {
                ledger.entry(self.config.model.clone()).or_default().cached += 1;
            }
            return Ok(reply);
        }
        if self.config.replay {
            return Err(LmError::NotRecorded(key));
        }
        if self.config.budget_usd.is_some() && self.config.price().is_none() {
            return Err(LmError::NoPrice(self.config.model.clone()));
        }
        let key_value = self.api_key()?;
        let reply = {
            let _slot = self.acquire();
            // Checked and booked while the slot is held, so a call waiting for a slot sees what
            // the others spent.
            if let Some(budget) = self.config.budget_usd {
                let spent = self.spent();
                if spent >= budget {
                    return Err(LmError::BudgetExhausted { budget, spent });
                }
            }
            let reply = self.send(&request, &key_value)?;
            if let Ok(mut ledger) = self.ledger.lock() {
                let usage = ledger.entry(self.config.model.clone()).or_default();
                usage.calls += 1;
                usage.prompt_tokens += reply.prompt_tokens;
                usage.completion_tokens += reply.completion_tokens;
                usage.cost += reply.cost;
            }
            reply
        };
        let _ = std::fs::create_dir_all(&self.cache_dir);
        if let Ok(json) = serde_json::to_string_pretty(&reply) {
            let _ = write_atomic(&path, json.as_bytes());
        }
        Ok(reply)
    }

    /// The API key to send: required over HTTPS, and never sent in clear text to another machine.
    fn api_key(&self) -> Result<String, LmError> {
        let url = reqwest::Url::parse(&self.config.base_url).map_err(|e| LmError::Failed {
            url: self.config.base_url.clone(),
            attempts: 0,
            reason: e.to_string(),
        })?;
        let key = std::env::var(&self.config.api_key_env).unwrap_or_default();
        if url.scheme() == "https" {
            return if key.is_empty() { Err(LmError::NoKey(self.config.api_key_env.clone())) } else { Ok(key) };
        }
        if key.is_empty() || is_loopback(&url) {
            return Ok(key);
        }
        Err(LmError::Insecure { url: self.config.base_url.clone(), var: self.config.api_key_env.clone() })
    }

    fn acquire(&self) -> SlotGuard<'_> {
        let (lock, ready) = &self.slots;
        let mut busy = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while *busy >= self.config.concurrency.max(1) {
            busy = ready.wait(busy).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *busy += 1;
        SlotGuard { client: self }
    }

    fn send(&self, request: &Request<'_>, api_key: &str) -> Result<Reply, LmError> {
        let url = format!("{}/chat/completions", self.config.base_url.trim_end_matches('/'));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut builder = self.http.post(&url).json(request);
            if !api_key.is_empty() {
                builder = builder.bearer_auth(api_key);
            }
            let (retry_after, reason) = match builder.send() {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        let body = response
                            .text()
                            .map_err(|e| LmError::Malformed { url: url.clone(), reason: e.to_string() })?;
                        return self.parse(&url, &body);
                    }
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .filter(|s| s.is_finite());
                    let retryable = status.as_u16() == 429 || status.is_server_error();
                    let text: String = response.text().unwrap_or_default().chars().take(300).collect();
                    let reason = format!("HTTP {status}: {text}");
                    if !retryable {
                        return Err(LmError::Failed { url, attempts: attempt, reason });
                    }
                    (retry_after, reason)
                }
                Err(e) => (None, if e.is_timeout() { "timed out".to_string() } else { e.to_string() }),
            };
            if attempt > self.config.max_retries {
                return Err(LmError::Failed { url, attempts: attempt, reason });
            }
            let backoff = self.config.backoff_ms.saturating_mul(1 << (attempt - 1).min(10)).min(30_000);
            let wait =
                retry_after.map_or(Duration::from_millis(backoff), |s| Duration::from_secs_f64(s.clamp(0.0, 60.0)));
            std::thread::sleep(wait);
        }
    }

    fn parse(&self, url: &str, body: &str) -> Result<Reply, LmError> {
        let malformed = |reason: &str| LmError::Malformed { url: url.to_string(), reason: reason.to_string() };
        let value: serde_json::Value = serde_json::from_str(body).map_err(|e| malformed(&format!("not JSON ({e})")))?;
        let content = value
            .get("choices")
            .and_then(|c| c.as_array())
            .filter(|c| !c.is_empty())
            .ok_or_else(|| malformed("no choices"))?[0]
            .pointer("/message/content")
            .and_then(|c| c.as_str())
            .ok_or_else(|| malformed("the first choice has no message content"))?
            .to_string();
        let tokens =
            |name: &str| value.pointer(&format!("/usage/{name}")).and_then(serde_json::Value::as_u64).unwrap_or(0);
        let (prompt_tokens, completion_tokens) = (tokens("prompt_tokens"), tokens("completion_tokens"));
        let cost = self.config.price().map_or(0.0, |(input, output)| {
            (prompt_tokens as f64 * input + completion_tokens as f64 * output) / 1_000_000.0
        });
        Ok(Reply { content, prompt_tokens, completion_tokens, cost, cached: false })
    }
}

struct SlotGuard<'a> {
    client: &'a LmClient,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let (lock, ready) = &self.client.slots;
        if let Ok(mut busy) = lock.lock() {
            *busy = busy.saturating_sub(1);
        }
        ready.notify_one();
    }
}

/// Fills `{{name}}` placeholders from `vars`; unknown names are left as they are.
pub fn render(template: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                match vars.get(name) {
                    Some(value) => out.push_str(value),
                    None => out.push_str(&rest[start..start + 4 + end]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether `url` names this machine (`localhost`, `127.x`, `[::1]`).
fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_unknown_ones_kept() {
        let vars: BTreeMap<String, String> = [("patch".to_string(), "P".to_string())].into();
        assert_eq!(render("a {{ patch }} b {{other}} {{", &vars), "a P b {{other}} {{");
    }

    #[test]
    fn a_config_with_nothing_set_has_every_default() {
        let config = LmConfig::default();
        assert_eq!((config.model.as_str(), config.max_retries, config.replay), ("gpt-4o", 4, false));
    }

    #[test]
    fn keys_go_only_to_loopback_hosts_over_plain_http() {
        let loopback = |url: &str| is_loopback(&reqwest::Url::parse(url).unwrap());
        for url in ["http://localhost:8000/v1", "http://127.0.0.1:9/v1", "http://[::1]:80", "HTTP://LOCALHOST/v1"] {
            assert!(loopback(url), "{url}");
        }
        for url in [
            "http://10.0.0.5/v1",
            "http://localhost.evil.example/v1",
            "http://127.evil.example/v1",
            "http://localhost:pw@evil.example/v1",
        ] {
            assert!(!loopback(url), "{url}");
        }
    }
}
