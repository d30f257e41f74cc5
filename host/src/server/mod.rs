//! The HTTP server: the Open Inference Protocol v2 REST API, and the
//! repository API that publishes, promotes and rolls back versions.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /v2/health/live`, `GET /v2/health/ready` | liveness, readiness |
//! | `GET /v2` | server metadata |
//! | `GET /v2/models/{name}[/versions/{version}]` | model metadata |
//! | `GET /v2/models/{name}[/versions/{version}]/ready` | model readiness |
//! | `POST /v2/models/{name}[/versions/{version}]/infer` | a prediction |
//! | `POST /v2/repository/index` | every model and version |
//! | `GET /v2/repository/models/{name}/versions` | versions and routing |
//! | `POST /v2/repository/models/{name}/versions` | publish a signed `.wasm` (the body) |
//! | `POST /v2/repository/models/{name}/promote` | `{"version": ...}`: route all traffic to it |
//! | `POST /v2/repository/models/{name}/traffic` | `{"versions": [{"version", "weight"}]}`: split traffic |
//! | `POST /v2/repository/models/{name}/rollback` | back to the previous routing |

mod error;
mod infer;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, response::IntoResponse};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use trademl_sdk::protocol::{MetadataTensor, ModelMetadataResponse, ServerMetadataResponse};

pub use error::AppError;
pub use infer::INLINE_DEADLINE;

use crate::model::LoadedVersion;
use crate::repository::Repository;
use crate::routing::Weighted;

/// The largest inference request body accepted.
pub const MAX_INFER_BODY: usize = 64 << 20;
/// The largest model file accepted by publish.
pub const MAX_MODEL_BODY: usize = 512 << 20;

/// What every handler shares.
pub struct AppState {
    /// The models.
    pub repo: Arc<Repository>,
    /// Bounds the calls running at once to the instance pool's size. A call
    /// holds its permit until its instance is torn down, after the answer.
    pub calls: Arc<Semaphore>,
    /// How calls are run.
    pub policy: CallPolicy,
}

/// Calls expected to take at most this long run on the thread that received
/// their request, by default: 100 µs, the longest a task of an async runtime
/// should run between two awaits (tokio's guidance: 10 to 100 µs).
pub const INLINE_BELOW: Duration = Duration::from_micros(100);

/// The longest [`CallPolicy::inline_below`] accepted: 1 ms, a tenth of
/// [`INLINE_DEADLINE`].
pub const INLINE_BELOW_MAX: Duration = Duration::from_millis(1);

/// How the server runs its calls.
#[derive(Clone, Copy, Debug)]
pub struct CallPolicy {
    /// How many calls may run at once (more wait for a place).
    pub max_concurrent: usize,
    /// A call this version's calls say should take at most this long runs
    /// on the runtime thread that received the request; others run on a
    /// blocking thread. Zero: every call on a blocking thread. See
    /// [`crate::model::LoadedVersion::expected_call_time`].
    pub inline_below: Duration,
}

impl CallPolicy {
    /// `max_concurrent` calls at once, short ones on the receiving thread.
    pub fn new(max_concurrent: usize) -> CallPolicy {
        CallPolicy {
            max_concurrent,
            inline_below: INLINE_BELOW,
        }
    }
}

/// The router, with its state. Tests drive it without a socket.
pub fn app(repo: Arc<Repository>, policy: CallPolicy) -> Router {
    let state = Arc::new(AppState {
        repo,
        calls: Arc::new(Semaphore::new(policy.max_concurrent.max(1))),
        policy,
    });
    let infer_routes = Router::new()
        .route("/v2/models/{name}/infer", post(infer::infer))
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(infer::infer_version),
        )
        .layer(DefaultBodyLimit::max(MAX_INFER_BODY));
    let publish = Router::new()
        .route(
            "/v2/repository/models/{name}/versions",
            get(versions).post(publish),
        )
        .layer(DefaultBodyLimit::max(MAX_MODEL_BODY));
    Router::new()
        .route(
            "/v2/health/live",
            get(|| async { Json(json!({"live": true})) }),
        )
        .route(
            "/v2/health/ready",
            get(|| async { Json(json!({"ready": true})) }),
        )
        .route("/v2", get(server_metadata))
        .route("/v2/models/{name}", get(model_metadata))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(version_metadata),
        )
        .route("/v2/models/{name}/ready", get(model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(version_ready),
        )
        .route("/v2/repository/index", post(index))
        .route("/v2/repository/models/{name}/promote", post(promote))
        .route("/v2/repository/models/{name}/traffic", post(traffic))
        .route("/v2/repository/models/{name}/rollback", post(rollback))
        .merge(infer_routes)
        .merge(publish)
        .fallback(|| async {
            AppError::new(
                StatusCode::NOT_FOUND,
                "no such endpoint; see the Open Inference Protocol v2 paths under /v2",
            )
        })
        .with_state(state)
}

type AppResult<T> = Result<T, AppError>;
type St = State<Arc<AppState>>;

async fn server_metadata() -> Json<ServerMetadataResponse> {
    Json(ServerMetadataResponse {
        name: "trademl".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: vec!["model_repository".into(), "trademl_versions".into()],
    })
}

fn metadata(l: &LoadedVersion, versions: Vec<String>) -> ModelMetadataResponse {
    let tensors = |specs: &[trademl_sdk::protocol::TensorSpec]| {
        specs
            .iter()
            .map(|s| MetadataTensor {
                name: s.name.clone(),
                datatype: s.datatype,
                shape: s.shape.clone(),
            })
            .collect()
    };
    ModelMetadataResponse {
        name: l.name().to_string(),
        versions,
        platform: "trademl-wasm".into(),
        inputs: tensors(&l.manifest.inputs),
        outputs: tensors(&l.manifest.outputs),
    }
}

async fn model_metadata(State(s): St, Path(name): Path<String>) -> AppResult<Json<Value>> {
    let model = s.repo.model(&name)?;
    let serving = model.route().pick().clone();
    let versions = model
        .versions()
        .iter()
        .map(|l| l.version().to_string())
        .collect();
    let mut body = serde_json::to_value(metadata(&serving, versions)).map_err(internal)?;
    body["description"] = json!(serving.manifest.description);
    Ok(Json(body))
}

async fn version_metadata(
    State(s): St,
    Path((name, version)): Path<(String, String)>,
) -> AppResult<Json<Value>> {
    let l = s.repo.resolve(&name, Some(&version))?;
    let mut body =
        serde_json::to_value(metadata(&l, vec![l.version().to_string()])).map_err(internal)?;
    body["description"] = json!(l.manifest.description);
    body["manifest"] = serde_json::to_value(&l.manifest).map_err(internal)?;
    Ok(Json(body))
}

async fn model_ready(State(s): St, Path(name): Path<String>) -> AppResult<Json<Value>> {
    s.repo.resolve(&name, None)?;
    Ok(Json(json!({"name": name, "ready": true})))
}

async fn version_ready(
    State(s): St,
    Path((name, version)): Path<(String, String)>,
) -> AppResult<Json<Value>> {
    s.repo.resolve(&name, Some(&version))?;
    Ok(Json(
        json!({"name": name, "version": version, "ready": true}),
    ))
}

async fn index(State(s): St, _body: Bytes) -> AppResult<Json<Value>> {
    let mut rows = Vec::new();
    for name in s.repo.names() {
        for v in s.repo.versions(&name)?.versions {
            rows.push(
                json!({"name": name, "version": v.version, "state": v.state, "digest": v.digest}),
            );
        }
    }
    Ok(Json(Value::Array(rows)))
}

async fn versions(State(s): St, Path(name): Path<String>) -> AppResult<impl IntoResponse> {
    Ok(Json(s.repo.versions(&name)?))
}

async fn publish(
    State(s): St,
    Path(name): Path<String>,
    body: Bytes,
) -> AppResult<impl IntoResponse> {
    if body.is_empty() {
        return Err(AppError::bad_request(
            "the request body is empty; send the signed .wasm file as the body",
        ));
    }
    let published = s.repo.publish(Some(&name), body.to_vec()).await?;
    Ok((StatusCode::CREATED, Json(published)))
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8], what: &str) -> AppResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| AppError::bad_request(format!("malformed {what}: {e}")))
}

#[derive(Deserialize)]
struct PromoteRequest {
    version: String,
}

async fn promote(
    State(s): St,
    Path(name): Path<String>,
    body: Bytes,
) -> AppResult<impl IntoResponse> {
    let req: PromoteRequest =
        parse_json(&body, "promote request (expected {\"version\": \"x.y.z\"})")?;
    Ok(Json(s.repo.promote(&name, &req.version).await?))
}

#[derive(Deserialize)]
struct TrafficRequest {
    versions: Vec<Weighted>,
}

async fn traffic(
    State(s): St,
    Path(name): Path<String>,
    body: Bytes,
) -> AppResult<impl IntoResponse> {
    let req: TrafficRequest = parse_json(
        &body,
        "traffic request (expected {\"versions\": [{\"version\": \"x.y.z\", \"weight\": 90}, ...]})",
    )?;
    Ok(Json(s.repo.set_traffic(&name, req.versions).await?))
}

// Every POST handler takes its body, even one it ignores: a body left unread
// makes hyper close a keep-alive connection after the answer.
async fn rollback(
    State(s): St,
    Path(name): Path<String>,
    _body: Bytes,
) -> AppResult<impl IntoResponse> {
    Ok(Json(s.repo.rollback(&name).await?))
}

fn internal(e: impl std::fmt::Display) -> AppError {
    tracing::error!("internal error: {e}");
    AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::sandbox::{Sandbox, SandboxConfig};

    fn empty_app() -> (tempfile::TempDir, Router) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("trust")).unwrap();
        let sandbox = Sandbox::new(SandboxConfig {
            pooling: false,
            ..SandboxConfig::default()
        })
        .unwrap();
        let repo = Repository::open(dir.path(), sandbox, Duration::from_secs(1)).unwrap();
        (dir, app(Arc::new(repo), CallPolicy::new(4)))
    }

    async fn call(app: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn health_and_server_metadata() {
        let (_dir, app) = empty_app();
        assert_eq!(
            call(&app, "GET", "/v2/health/live", "").await,
            (StatusCode::OK, json!({"live": true}))
        );
        assert_eq!(
            call(&app, "GET", "/v2/health/ready", "").await,
            (StatusCode::OK, json!({"ready": true}))
        );
        let (status, body) = call(&app, "GET", "/v2", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["name"], "trademl");
    }

    #[tokio::test]
    async fn unknown_model_is_404_with_a_reason() {
        let (_dir, app) = empty_app();
        let (status, body) = call(&app, "POST", "/v2/models/nope/infer", "{}").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let message = body["error"].as_str().unwrap();
        assert!(message.contains("unknown model \"nope\""), "{message}");
        let (status, _) = call(&app, "GET", "/v2/models/nope/ready", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = call(&app, "GET", "/v3/whatever", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body["error"].as_str().unwrap().contains("no such endpoint"));
    }

    #[tokio::test]
    async fn publish_refuses_an_empty_body_and_garbage() {
        let (_dir, app) = empty_app();
        let (status, body) = call(&app, "POST", "/v2/repository/models/m/versions", "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error"].as_str().unwrap().contains("empty"));
        let (status, body) =
            call(&app, "POST", "/v2/repository/models/m/versions", "not wasm").await;
        assert!(status.is_client_error(), "{status}");
        assert!(
            body["error"].as_str().unwrap().starts_with("refused"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn routing_changes_on_unknown_models_are_404() {
        let (_dir, app) = empty_app();
        let (status, _) = call(
            &app,
            "POST",
            "/v2/repository/models/m/promote",
            "{\"version\":\"1.0.0\"}",
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = call(&app, "POST", "/v2/repository/models/m/promote", "{").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error"].as_str().unwrap().contains("malformed"));
        let (status, _) = call(&app, "POST", "/v2/repository/models/m/rollback", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
