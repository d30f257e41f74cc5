//! The one error type of the HTTP layer, and the response it becomes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::model::{LoadError, PredictError};
use crate::repository::RepoError;

/// An error answered as `{"error": "..."}` with a status that says whose
/// fault it was: 4xx for the request, 5xx for the model or the host.
#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    message: String,
}

impl AppError {
    /// An error with a status and a message for the client.
    pub fn new(status: StatusCode, message: impl Into<String>) -> AppError {
        AppError {
            status,
            message: message.into(),
        }
    }

    /// A 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::BAD_REQUEST, message)
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<RepoError> for AppError {
    fn from(err: RepoError) -> AppError {
        let status = match &err {
            RepoError::NotFound(_) => StatusCode::NOT_FOUND,
            RepoError::Conflict(_) => StatusCode::CONFLICT,
            RepoError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RepoError::Refused(LoadError::Signature(_)) => StatusCode::FORBIDDEN,
            RepoError::Refused(_) => StatusCode::BAD_REQUEST,
            RepoError::Internal(e) => {
                tracing::error!("internal error: {e:#}");
                return AppError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; the server log has the details",
                );
            }
        };
        AppError::new(status, err.to_string())
    }
}

impl From<PredictError> for AppError {
    fn from(err: PredictError) -> AppError {
        let status = match &err {
            PredictError::InvalidInput(_) => StatusCode::BAD_REQUEST,
            PredictError::ModelFailure(_)
            | PredictError::Call(_)
            | PredictError::Instantiate(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        AppError::new(status, err.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), "{}", self.message);
        }
        let body = Json(serde_json::json!({ "error": self.message }));
        (self.status, body).into_response()
    }
}
