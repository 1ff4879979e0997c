//! Every REST error is Kafka Connect's `{"error_code": N, "message": "..."}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::herder::HerderError;

/// An error answer of the REST API.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Another worker should answer this (the leader, or the worker running a task); `None`
    /// inside when its URL is unknown (mid-rebalance).
    pub forward: Option<Option<String>>,
}

/// Put on a response that the forwarding layer should re-issue to another worker.
#[derive(Debug, Clone)]
pub struct ForwardTo(pub Option<String>);

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            forward: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<HerderError> for ApiError {
    fn from(err: HerderError) -> ApiError {
        let status = match &err {
            HerderError::NotFound(_) => StatusCode::NOT_FOUND,
            HerderError::AlreadyExists(_) => StatusCode::CONFLICT,
            HerderError::BadRequest(_) => StatusCode::BAD_REQUEST,
            HerderError::Forbidden(_) => StatusCode::FORBIDDEN,
            HerderError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            HerderError::NotLeader(url) => {
                let mut e = ApiError::new(
                    StatusCode::CONFLICT,
                    "Cannot complete request momentarily due to no known leader URL, likely because a rebalance was underway.",
                );
                e.forward = Some(url.clone());
                return e;
            }
            HerderError::NotOwner { url, .. } => {
                let mut e = ApiError::new(StatusCode::CONFLICT, err.to_string());
                e.forward = Some(Some(url.clone()));
                return e;
            }
        };
        ApiError::new(status, err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.status.as_u16(), "message": self.message});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(url) = self.forward {
            response.extensions_mut().insert(ForwardTo(url));
        }
        response
    }
}
