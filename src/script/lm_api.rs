//! The `lm::` namespace scripts see: `chat(messages)`, `chat(messages, options)`,
//! `chat(system, user)`, `render(template, vars)` and `code_block(text)`. What the calls cost
//! is added up per thread, so the caller of one hook knows what that hook spent.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rhai::{Array, Dynamic, EvalAltResult, ImmutableString, Map, Module, Position};

use super::extend_deadline;
use crate::lm::{LmClient, Message};

thread_local! {
    static COST: Cell<f64> = const { Cell::new(0.0) };
}

/// Dollars spent by `lm::chat` on this thread since the last call, and a fresh count.
pub fn take_cost() -> f64 {
    COST.with(|c| c.replace(0.0))
}

fn error(message: String) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(Dynamic::from(message), Position::NONE))
}

fn chat(
    client: &Option<Arc<LmClient>>,
    messages: Vec<Message>,
    temperature: Option<f64>,
) -> Result<String, Box<EvalAltResult>> {
    let client = client.as_ref().ok_or_else(|| {
        error("no language model is configured (give the recipe an `lm:` section or pass --lm-model)".into())
    })?;
    let started = Instant::now();
    let reply = client.chat(&messages, temperature);
    // Waiting for the model does not count against the script's time limit.
    extend_deadline(started.elapsed());
    let reply = reply.map_err(|e| error(format!("lm::chat: {e}")))?;
    COST.with(|c| c.set(c.get() + reply.cost));
    Ok(reply.content)
}

fn messages_from(array: &Array) -> Result<Vec<Message>, Box<EvalAltResult>> {
    array
        .iter()
        .map(|m| {
            let map = m
                .clone()
                .try_cast::<Map>()
                .ok_or_else(|| error("lm::chat: each message is a map #{role, content}".into()))?;
            let field = |k: &str| map.get(k).and_then(|v| v.clone().into_string().ok()).unwrap_or_default();
            Ok(Message { role: field("role"), content: field("content") })
        })
        .collect()
}

/// The first fenced code block of a model's answer (without the fences), or `""`.
pub fn code_block(text: &str) -> String {
    let Some(open) = text.find("```") else { return String::new() };
    let after = &text[open + 3..];
    let Some(newline) = after.find('\n') else { return String::new() };
    let body = &after[newline + 1..];
    match body.find("```") {
        Some(close) => body[..close].trim_end().to_string(),
        None => String::new(),
    }
}

/// Builds the namespace around a client (or none: calls then fail with a clear message).
pub fn module(client: Option<Arc<LmClient>>) -> Module {
    let mut module = Module::new();
    let c1 = client.clone();
    module.set_native_fn("chat", move |messages: Array| chat(&c1, messages_from(&messages)?, None));
    let c2 = client.clone();
    module.set_native_fn("chat", move |messages: Array, options: Map| {
        let temperature =
            options.get("temperature").and_then(|t| t.as_float().ok().or_else(|| t.as_int().ok().map(|i| i as f64)));
        chat(&c2, messages_from(&messages)?, temperature)
    });
    module.set_native_fn("chat", move |system: ImmutableString, user: ImmutableString| {
        let messages = vec![
            Message { role: "system".into(), content: system.to_string() },
            Message { role: "user".into(), content: user.to_string() },
        ];
        chat(&client, messages, None)
    });
    module.set_native_fn("render", |template: ImmutableString, vars: Map| {
        let vars: BTreeMap<String, String> = vars.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Ok(crate::lm::render(&template, &vars))
    });
    module.set_native_fn("code_block", |text: ImmutableString| Ok(code_block(&text)));
    module
}

#[cfg(test)]
mod tests {
    use super::code_block;

    #[test]
    fn the_first_fenced_block_is_taken_whatever_its_language_tag() {
        assert_eq!(
            code_block("Explanation: x\n```python\ndef f():\n    return 2\n```\nmore"),
            "def f():\n    return 2"
        );
        assert_eq!(code_block("```\na = 1\n```"), "a = 1");
        assert_eq!(code_block("no code here"), "");
        assert_eq!(code_block("```python\nunclosed"), "");
    }
}
