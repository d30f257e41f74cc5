//! A small blocking client of the repository API, for the CLI.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use ureq::Agent;

/// A trademl server.
pub struct Client {
    base: String,
    agent: Agent,
}

impl Client {
    /// A client of the server at `base` (`http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Client {
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        Client {
            base: base.trim_end_matches('/').to_string(),
            agent,
        }
    }

    /// Publish a signed component.
    pub fn publish(&self, name: &str, wasm: Vec<u8>) -> Result<Value> {
        let url = format!("{}/v2/repository/models/{name}/versions", self.base);
        let reply = self
            .agent
            .post(&url)
            .content_type("application/wasm")
            .send(&wasm[..]);
        answer(&url, reply)
    }

    /// Route all of a model's traffic to `version`.
    pub fn promote(&self, name: &str, version: &str) -> Result<Value> {
        let url = format!("{}/v2/repository/models/{name}/promote", self.base);
        answer(
            &url,
            self.agent
                .post(&url)
                .send_json(json!({ "version": version })),
        )
    }

    /// Return a model to its previous routing.
    pub fn rollback(&self, name: &str) -> Result<Value> {
        let url = format!("{}/v2/repository/models/{name}/rollback", self.base);
        answer(&url, self.agent.post(&url).send_empty())
    }

    /// A model's versions and routing.
    pub fn versions(&self, name: &str) -> Result<Value> {
        let url = format!("{}/v2/repository/models/{name}/versions", self.base);
        answer(&url, self.agent.get(&url).call())
    }
}

fn answer(
    url: &str,
    reply: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Value> {
    let reply = reply.with_context(|| format!("reaching {url}"))?;
    let status = reply.status();
    let text = reply
        .into_body()
        .read_to_string()
        .with_context(|| format!("reading the answer of {url}"))?;
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if !status.is_success() {
        let message = body
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string());
        bail!("the server answered {status}: {message}");
    }
    Ok(body)
}
