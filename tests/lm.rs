//! The LM client against a local OpenAI-compatible server started by the test (real HTTP on
//! loopback): retries, timeouts, the budget, the cache, replay, and bad answers.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bugsmith::lm::{LmClient, LmConfig, LmError, Message};

/// One scripted answer: status, body, delay before answering.
type Answer = (u16, String, u64);

/// A tiny HTTP server answering from a script, recording request bodies. Ends when dropped.
struct Server {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
}

fn completion(text: &str) -> String {
    serde_json::json!({
        "id": "x", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
    })
    .to_string()
}

fn serve(script: Vec<Answer>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        let mut script = script.into_iter();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let (_, body) = common::read_request(&stream);
            seen.lock().unwrap().push(body);
            let (status, text, delay) = script.next().unwrap_or((500, "script exhausted".into(), 0));
            std::thread::sleep(Duration::from_millis(delay));
            let extra = if status == 429 { "Retry-After: 0\r\n" } else { "" };
            let response = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    Server { url, bodies }
}

fn client(server: &Server, cache: &std::path::Path, edit: impl FnOnce(&mut LmConfig)) -> LmClient {
    let mut config = LmConfig {
        base_url: server.url.clone(),
        model: "test-model".into(),
        backoff_ms: 10,
        timeout_secs: 5,
        ..LmConfig::default()
    };
    config.prices.insert("test-model".into(), (2.0, 8.0));
    edit(&mut config);
    LmClient::new(config, cache.to_path_buf()).unwrap()
}

fn ask(text: &str) -> Vec<Message> {
    vec![Message { role: "user".into(), content: text.into() }]
}

#[test]
fn rate_limits_and_server_errors_are_retried_and_the_cost_recorded() {
    let server = serve(vec![(429, "slow down".into(), 0), (500, "oops".into(), 0), (200, completion("hello"), 0)]);
    let cache = tempfile::tempdir().unwrap();
    let lm = client(&server, cache.path(), |_| {});
    let reply = lm.chat(&ask("hi"), None).unwrap();
    assert_eq!(reply.content, "hello");
    assert_eq!(server.bodies.lock().unwrap().len(), 3);
    // 1000 prompt tokens at $2/M and 500 completion tokens at $8/M.
    assert!((reply.cost - 0.006).abs() < 1e-12, "{}", reply.cost);
    let ledger = lm.ledger();
    assert_eq!((ledger["test-model"].calls, ledger["test-model"].prompt_tokens), (1, 1000));
    let body: serde_json::Value = serde_json::from_str(&server.bodies.lock().unwrap()[0]).unwrap();
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["messages"][0]["content"], "hi");
}

#[test]
fn a_slow_server_times_out_with_a_clear_error() {
    let server = serve(vec![(200, completion("late"), 3000)]);
    let cache = tempfile::tempdir().unwrap();
    let lm = client(&server, cache.path(), |c| {
        c.timeout_secs = 1;
        c.max_retries = 0;
    });
    let error = lm.chat(&ask("hi"), None).unwrap_err();
    assert!(matches!(&error, LmError::Failed { reason, attempts: 1, .. } if reason == "timed out"), "{error}");
}

#[test]
fn the_budget_stops_new_calls_but_not_cached_ones() {
    let server = serve(vec![(200, completion("one"), 0), (200, completion("two"), 0)]);
    let cache = tempfile::tempdir().unwrap();
    let lm = client(&server, cache.path(), |c| c.budget_usd = Some(0.005));
    assert_eq!(lm.chat(&ask("first"), None).unwrap().content, "one");
    let error = lm.chat(&ask("second"), None).unwrap_err();
    assert!(matches!(error, LmError::BudgetExhausted { .. }), "{error}");
    assert!(error.to_string().contains("budget of $0.01"), "{error}");
    assert_eq!(server.bodies.lock().unwrap().len(), 1, "no request after the budget ran out");
    assert_eq!(lm.chat(&ask("first"), None).unwrap().content, "one", "cached answers stay available");
}

#[test]
fn a_budget_without_a_price_for_the_model_is_refused_before_any_call() {
    let cache = tempfile::tempdir().unwrap();
    let config = LmConfig {
        base_url: "http://127.0.0.1:9/v1".into(),
        model: "unpriced".into(),
        budget_usd: Some(1.0),
        ..LmConfig::default()
    };
    let error = LmClient::new(config, cache.path().to_path_buf()).unwrap().chat(&ask("hi"), None).unwrap_err();
    assert!(error.to_string().contains("no price for model `unpriced`"), "{error}");
}

#[test]
fn a_key_is_never_sent_in_clear_text_to_another_machine() {
    let cache = tempfile::tempdir().unwrap();
    // Any variable that is set stands in for the key: PATH always is.
    let config = LmConfig { base_url: "http://192.0.2.1/v1".into(), api_key_env: "PATH".into(), ..LmConfig::default() };
    let error = LmClient::new(config, cache.path().to_path_buf()).unwrap().chat(&ask("hi"), None).unwrap_err();
    assert!(matches!(error, LmError::Insecure { .. }), "{error}");
    assert!(!error.to_string().contains(&std::env::var("PATH").unwrap()), "the key itself is never printed");
}

#[test]
fn a_rerun_is_answered_from_the_cache_for_free_and_replay_needs_no_server() {
    let server = serve(vec![(200, completion("cached text"), 0)]);
    let cache = tempfile::tempdir().unwrap();
    let first = client(&server, cache.path(), |_| {}).chat(&ask("same"), Some(0.0)).unwrap();
    assert!(!first.cached && first.cost > 0.0);
    let again = client(&server, cache.path(), |_| {});
    let second = again.chat(&ask("same"), Some(0.0)).unwrap();
    assert!(second.cached);
    assert_eq!((second.content.as_str(), second.cost), ("cached text", 0.0));
    assert_eq!(server.bodies.lock().unwrap().len(), 1);
    assert_eq!(again.ledger()["test-model"].cached, 1);

    let offline = Server { url: "http://127.0.0.1:9/v1".into(), bodies: Arc::default() };
    let replay = client(&offline, cache.path(), |c| c.replay = true);
    assert_eq!(replay.chat(&ask("same"), Some(0.0)).unwrap().content, "cached text");
    assert!(matches!(replay.chat(&ask("never asked"), Some(0.0)), Err(LmError::NotRecorded(_))));
}

#[test]
fn malformed_json_and_empty_choices_are_errors() {
    let server = serve(vec![
        (200, "{not json".into(), 0),
        (200, r#"{"choices": [], "usage": {}}"#.into(), 0),
        (200, r#"{"choices": [{"message": {"role": "assistant"}}]}"#.into(), 0),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let lm = client(&server, cache.path(), |_| {});
    let reason = |e: LmError| match e {
        LmError::Malformed { reason, .. } => reason,
        other => panic!("{other}"),
    };
    assert!(reason(lm.chat(&ask("a"), None).unwrap_err()).starts_with("not JSON"));
    assert_eq!(reason(lm.chat(&ask("b"), None).unwrap_err()), "no choices");
    assert_eq!(reason(lm.chat(&ask("c"), None).unwrap_err()), "the first choice has no message content");
    assert_eq!(lm.spent(), 0.0);
}

#[test]
fn a_client_error_is_not_retried() {
    let server = serve(vec![(401, r#"{"error": "bad key"}"#.into(), 0)]);
    let cache = tempfile::tempdir().unwrap();
    let error = client(&server, cache.path(), |_| {}).chat(&ask("a"), None).unwrap_err();
    assert!(matches!(&error, LmError::Failed { attempts: 1, reason, .. } if reason.starts_with("HTTP 401")), "{error}");
}
