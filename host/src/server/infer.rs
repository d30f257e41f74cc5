//! `POST /v2/models/{name}[/versions/{version}]/infer`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use tokio::sync::OwnedSemaphorePermit;
use trademl_sdk::protocol::{InferenceRequest, InferenceResponse, Tensor};

use super::{AppError, AppState};
use crate::model::{LoadedVersion, PredictError};
use crate::sandbox::CallError;

/// The CPU deadline of a call run on the thread that received its request:
/// a call expected to take at most [`super::CallPolicy::inline_below`] (1 ms
/// at most) that runs this long was misjudged, and is stopped, so that the
/// other connections of that thread wait no longer. It runs again on a
/// blocking thread, under the version's own deadline.
pub const INLINE_DEADLINE: Duration = Duration::from_millis(10);

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
    let short = !s.policy.inline_below.is_zero()
        && loaded
            .expected_call_time(&request.inputs)
            .is_some_and(|t| t <= s.policy.inline_below);
    let mut outputs = if short {
        match on_this_thread(&loaded, request.inputs, permit) {
            Ok(result) => result?,
            Err(permit) => {
                // Run it again from the request, whose inputs the first call
                // consumed. The body parsed a moment ago.
                let again: InferenceRequest = serde_json::from_slice(body).map_err(|e| {
                    AppError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("the request could not be read again: {e}"),
                    )
                })?;
                on_a_blocking_thread(loaded.clone(), again.inputs, permit).await?
            }
        }
    } else {
        on_a_blocking_thread(loaded.clone(), request.inputs, permit).await?
    };
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

/// Run a call expected to be short on this thread, one of the runtime's I/O
/// threads: no hand-off to a blocking thread and back, whose wake-ups cost
/// more than a microsecond model's whole call (docs/benchmarks.md, "The
/// seventeenth round"). The spent instance is torn down, and the version's
/// next instances made, by a task of their own, which this thread runs once
/// the answer is written (a task spawned from a runtime thread runs next on
/// that thread, unless another is idle and takes it first).
///
/// The call runs under [`INLINE_DEADLINE`]. One stopped by it gives its
/// permit back (`Err`) to be run again on a blocking thread: each call has a
/// fresh instance, so the first leaves nothing behind, and its time has
/// raised the version's expected call time, so that the next such calls go
/// to a blocking thread from the start.
fn on_this_thread(
    model: &Arc<LoadedVersion>,
    inputs: Vec<Tensor>,
    permit: OwnedSemaphorePermit,
) -> Result<Result<Vec<Tensor>, PredictError>, OwnedSemaphorePermit> {
    let (result, spent) = model.predict_within(inputs, INLINE_DEADLINE);
    if let Err(PredictError::Call(CallError::Deadline { deadline })) = &result
        && *deadline < model.limits().deadline
    {
        drop(spent);
        tracing::info!(
            "{} {}: a call ran past the {} ms allowed on an I/O thread; running it again on a blocking thread",
            model.name(),
            model.version(),
            deadline.as_millis(),
        );
        return Err(permit);
    }
    let model = Arc::clone(model);
    tokio::spawn(async move {
        // The permit counts the instance until it is torn down.
        drop(spent);
        drop(permit);
        model.make_spares();
    });
    Ok(result)
}

/// Run a call on one of the runtime's blocking threads, which answers as soon
/// as the outputs are out of the instance, then tears the instance down and
/// makes the version's next instances.
async fn on_a_blocking_thread(
    model: Arc<LoadedVersion>,
    inputs: Vec<Tensor>,
    permit: OwnedSemaphorePermit,
) -> Result<Vec<Tensor>, AppError> {
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
    Ok(answered.await.map_err(|_| {
        AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the prediction task failed before answering",
        )
    })??)
}
