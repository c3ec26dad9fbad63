//! The API's errors: a status and a JSON body `{"error": ..., "detail": ...}`, where
//! `error` is a short kind a client can match on and `detail` says what was wrong
//! and what to do.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A short kind: `bad_request`, `unauthorized`, `not_found`, ...
    pub error: &'static str,
    /// What was wrong, in the user's terms.
    pub detail: String,
}

impl ApiError {
    /// 400: the request is malformed or names a bad field.
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, error: "bad_request", detail: detail.into() }
    }

    /// 404: no such study or trial.
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::NOT_FOUND, error: "not_found", detail: detail.into() }
    }

    /// 409: the request conflicts with what is stored (a finished trial, a met budget).
    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::CONFLICT, error: "conflict", detail: detail.into() }
    }

    /// 500: the store failed.
    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "internal",
            detail: detail.into(),
        }
    }
}

impl From<hpo_core::Error> for ApiError {
    fn from(err: hpo_core::Error) -> ApiError {
        use hpo_core::Error as E;
        let detail = err.to_string();
        match err {
            E::Spec(_) | E::StepOutOfRange(_) => ApiError::bad_request(detail),
            E::StudyNotFound(_) | E::NoSuchTrial { .. } => ApiError::not_found(detail),
            E::NotRunning { .. }
            | E::TrialFinished { .. }
            | E::TrialNotRunning { .. }
            | E::Incompatible { .. }
            | E::SpaceChanged { .. }
            | E::StudyExists(_)
            | E::MultiObjective { .. } => ApiError::conflict(detail),
            E::NotFinite { .. } => {
                ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, error: "not_finite", detail }
            }
            E::Worker(_) | E::UnknownStudy(_) | E::UnknownTrial(_) | E::Storage(_) => {
                ApiError::internal(detail)
            }
        }
    }
}

impl From<hpo_core::spec::SpecError> for ApiError {
    fn from(err: hpo_core::spec::SpecError) -> ApiError {
        ApiError::bad_request(err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": self.error, "detail": self.detail}))).into_response()
    }
}
