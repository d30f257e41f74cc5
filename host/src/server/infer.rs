//! `POST /v2/models/{name}[/versions/{version}]/infer`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use trademl_sdk::protocol::{InferenceRequest, InferenceResponse};

use super::{AppError, AppState};

pub(super) async fn infer(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<InferenceResponse>, AppError> {
    run(&s, &name, None, &body).await
}

pub(super) async fn infer_version(
    State(s): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<InferenceResponse>, AppError> {
    run(&s, &name, Some(&version), &body).await
}

async fn run(
    s: &AppState,
    name: &str,
    version: Option<&str>,
    body: &[u8],
) -> Result<Json<InferenceResponse>, AppError> {
    // Resolve before parsing so that an unknown model is a 404 whatever the body.
    let loaded = s.repo.resolve(name, version)?;
    let request: InferenceRequest = serde_json::from_slice(body)
        .map_err(|e| AppError::bad_request(format!("malformed inference request: {e}")))?;
    if request.inputs.is_empty() {
        return Err(AppError::bad_request(
            "the request has no inputs; send {\"inputs\": [{\"name\", \"datatype\", \"shape\", \"data\"}, ...]}",
        ));
    }
    if let Some(requested) = &request.outputs {
        for r in requested {
            if !loaded.manifest.outputs.iter().any(|o| o.name == r.name) {
                return Err(AppError::bad_request(format!(
                    "unknown output \"{}\" requested; model \"{}\" returns {}",
                    r.name,
                    name,
                    loaded
                        .manifest
                        .outputs
                        .iter()
                        .map(|o| format!("\"{}\"", o.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    let permit = Arc::clone(&s.calls).acquire_owned().await.map_err(|_| {
        AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        )
    })?;
    let model = loaded.clone();
    let inputs = request.inputs;
    let (answer, answered) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        // The answer goes back first. While it is being sent, this thread
        // tears the call's instance down (the permit counts it until then,
        // so live instances never exceed the pool's slots for calls), then
        // makes the instances the next calls will take.
        model.predict_answering(inputs, |result| {
            if let Err(unsent) = answer.send(result) {
                // The request's future is gone: its client hung up (or
                // timed out) while the call ran. The call ran to its end
                // all the same, holding its permit.
                let outcome = match unsent {
                    Ok(_) => "it had succeeded".to_string(),
                    Err(err) => format!("it had failed: {err}"),
                };
                tracing::info!(
                    "{} {}: the client went away before the answer; the call ran to its end ({outcome})",
                    model.name(),
                    model.version(),
                );
            }
        });
        drop(permit);
        model.make_spares();
    });
    let mut outputs = answered.await.map_err(|_| {
        AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the prediction task failed before answering",
        )
    })??;
    if let Some(requested) = &request.outputs {
        outputs.retain(|t| requested.iter().any(|r| r.name == t.name));
    }
    Ok(Json(InferenceResponse {
        model_name: loaded.name().to_string(),
        model_version: Some(loaded.version().to_string()),
        id: request.id,
        parameters: None,
        outputs,
    }))
}
