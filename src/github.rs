//! GitHub's REST API, for PR mirroring: merged pull requests touching 1 to 8 Python source files,
//! with their diffs and the text of the issue they fix. Paginates through `Link` headers, waits
//! out rate limits (up to a minute), and sends the token (from the caller) only in a header.

use std::time::Duration;

use reqwest::blocking::{Client, Response};
use serde_json::Value;

use crate::changes::{Change, is_mirrored_path};

/// Longest wait for a rate limit to reset.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// GitHub could not be read (what was asked and what came back).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GithubError(pub String);

impl From<String> for GithubError {
    fn from(message: String) -> GithubError {
        GithubError(message)
    }
}

struct Api<'a> {
    client: Client,
    token: Option<&'a str>,
}

impl Api<'_> {
    /// GET with the rate limit waited out; returns the JSON and the `next` page's URL.
    fn get(&self, url: &str) -> Result<(Value, Option<String>), GithubError> {
        for _ in 0..5 {
            let mut request =
                self.client.get(url).header("Accept", "application/vnd.github+json").header("User-Agent", "bugsmith");
            if let Some(token) = self.token {
                request = request.bearer_auth(token);
            }
            let response = request.send().map_err(|e| format!("GET {url}: {e}"))?;
            if let Some(wait) = rate_limit_wait(&response) {
                if wait > MAX_RATE_LIMIT_WAIT {
                    return Err(GithubError(format!(
                        "GitHub rate limit reached; it resets in {} s (set GITHUB_TOKEN for more)",
                        wait.as_secs()
                    )));
                }
                std::thread::sleep(wait);
                continue;
            }
            let status = response.status();
            let next = next_link(&response);
            let text = response.text().map_err(|e| format!("GET {url}: {e}"))?;
            if !status.is_success() {
                return Err(GithubError(format!(
                    "GET {url}: HTTP {status}: {}",
                    text.chars().take(200).collect::<String>()
                )));
            }
            let value = serde_json::from_str(&text).map_err(|e| format!("GET {url}: not JSON ({e})"))?;
            return Ok((value, next));
        }
        Err(GithubError(format!("GET {url}: still rate limited after several waits")))
    }

    /// Every item of a paginated list.
    fn list(&self, first: String, limit: usize) -> Result<Vec<Value>, GithubError> {
        let mut items = Vec::new();
        let mut url = Some(first);
        while let Some(current) = url {
            let (value, next) = self.get(&current)?;
            let page = value.as_array().cloned().unwrap_or_default();
            if page.is_empty() {
                break;
            }
            items.extend(page);
            if items.len() >= limit {
                break;
            }
            url = next;
        }
        Ok(items)
    }
}

/// How long to wait when the response says the rate limit is used up.
fn rate_limit_wait(response: &Response) -> Option<Duration> {
    let status = response.status().as_u16();
    if status != 403 && status != 429 {
        return None;
    }
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(seconds) = header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(seconds));
    }
    if header("x-ratelimit-remaining") != Some("0") {
        return None;
    }
    let reset = header("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok())?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Some(Duration::from_secs(reset.saturating_sub(now).max(1)))
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(response: &Response) -> Option<String> {
    let link = response.headers().get("link")?.to_str().ok()?;
    link.split(',').find(|part| part.contains("rel=\"next\"")).and_then(|part| {
        let start = part.find('<')? + 1;
        let end = part.find('>')?;
        Some(part[start..end].to_string())
    })
}

/// The number of the issue a PR body says it fixes (`Fixes #12`, `closes #3`, `resolves #7`).
fn linked_issue(body: &str) -> Option<u64> {
    let lower = body.to_lowercase();
    let keywords =
        ["fixes #", "fixed #", "fix #", "closes #", "closed #", "close #", "resolves #", "resolved #", "resolve #"];
    // The first mention in the text wins, whatever its keyword.
    keywords
        .iter()
        .flat_map(|keyword| lower.match_indices(keyword).map(move |(at, _)| at + keyword.len()))
        .filter_map(|at| {
            let number: u64 = lower[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()?;
            Some((at, number))
        })
        .min()
        .map(|(_, number)| number)
}

/// Merged pull requests of `repo` (`owner/name`), newest first, as changes to mirror.
pub fn changes(api: &str, repo: &str, token: Option<&str>, limit: usize) -> Result<Vec<Change>, GithubError> {
    crate::lm::install_tls_provider();
    let client = Client::builder().timeout(Duration::from_secs(60)).build().map_err(|e| e.to_string())?;
    let api_base = api.trim_end_matches('/');
    let github = Api { client, token };
    let pulls = github.list(
        format!("{api_base}/repos/{repo}/pulls?state=closed&sort=updated&direction=desc&per_page=100"),
        limit.saturating_mul(4).max(limit),
    )?;
    let mut changes = Vec::new();
    for pull in pulls {
        if changes.len() >= limit {
            break;
        }
        if pull["merged_at"].is_null() {
            continue;
        }
        let number = pull["number"].as_u64().unwrap_or(0);
        let files = github.list(format!("{api_base}/repos/{repo}/pulls/{number}/files?per_page=100"), 3000)?;
        let sources: Vec<&Value> =
            files.iter().filter(|f| f["filename"].as_str().is_some_and(is_mirrored_path)).collect();
        // GitHub leaves `patch` out of large or binary diffs, and renames need both names: a partial
        // diff would not be the PR's change, so such PRs are skipped.
        let complete = sources.iter().all(|f| f["patch"].is_string() && f["status"].as_str() != Some("renamed"));
        if !complete || !(1..=8).contains(&sources.len()) {
            continue;
        }
        let mut patch = String::new();
        for file in sources {
            let name = file["filename"].as_str().unwrap_or("");
            let (mode, old, new) = match file["status"].as_str() {
                Some("added") => ("new file mode 100644\n", "/dev/null".to_string(), format!("b/{name}")),
                Some("removed") => ("deleted file mode 100644\n", format!("a/{name}"), "/dev/null".to_string()),
                _ => ("", format!("a/{name}"), format!("b/{name}")),
            };
            let body = file["patch"].as_str().unwrap_or("");
            patch.push_str(&format!("diff --git a/{name} b/{name}\n{mode}--- {old}\n+++ {new}\n{body}\n"));
        }
        let title = pull["title"].as_str().unwrap_or("").to_string();
        let body = pull["body"].as_str().unwrap_or("").to_string();
        // The linked issue's text when it can be fetched, else the PR's own description.
        let fetched = match linked_issue(&body) {
            // A number that names no issue (404) or a removed one (410): use the PR's text.
            Some(issue) => match github.get(&format!("{api_base}/repos/{repo}/issues/{issue}")) {
                Err(e) if e.0.contains("HTTP 404") || e.0.contains("HTTP 410") => None,
                other => Some(other?),
            },
            None => None,
        };
        let linked = fetched.map(|(value, _)| {
            format!("{}\n\n{}", value["title"].as_str().unwrap_or(""), value["body"].as_str().unwrap_or(""))
                .trim()
                .to_string()
        });
        let issue_text = linked.unwrap_or(body);
        changes.push(Change {
            id: format!("pr_{number}"),
            title,
            issue_text,
            patch,
            origin: pull["html_url"].as_str().unwrap_or("").to_string(),
        });
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::linked_issue;

    #[test]
    fn linked_issues_are_found_in_pr_bodies() {
        assert_eq!(linked_issue("This Fixes #123, finally"), Some(123));
        assert_eq!(linked_issue("closes #7"), Some(7));
        assert_eq!(linked_issue("see #9"), None);
        assert_eq!(linked_issue("Closes #5 and fixes #3"), Some(5));
    }
}
