//! The REST half: info, dev login, token refresh, TURN credentials, history.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use calldock_protocol::{
    DeviceId, ECHO_USER, ErrorCode, LoginRequest, PROTOCOL_VERSION, RestError, ServerInfo, Session, TurnCredentials,
    UserId, WS_PATH,
};
use serde::Deserialize;

use crate::token::{Claims, TokenError};
use crate::{SERVER_AGENT, Shared};

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/info", get(info))
        .route("/v1/login", post(login))
        .route("/v1/token/refresh", post(refresh))
        .route("/v1/turn", get(turn))
        .route("/v1/history", get(history))
        // Only the routes above: the WebSocket needs no CORS.
        .layer(cors())
        .route(WS_PATH, get(crate::ws::upgrade))
        .with_state(shared)
}

/// Web clients of the protocol (a page on any origin, e.g. the Chromium interop peer) call the
/// REST API cross-origin. Tokens travel in the `Authorization` header, never in cookies, so any
/// origin may: the preflight allows GET and POST with `Authorization` and `Content-Type` (a `*`
/// in `Access-Control-Allow-Headers` would not cover `Authorization`).
fn cors() -> tower_http::cors::CorsLayer {
    use axum::http::Method;
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600))
}

/// A REST failure: status plus the protocol's error body.
struct Failure(StatusCode, ErrorCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let Failure(status, code, message) = self;
        (status, Json(RestError { code, message, retryable: code.retryable() })).into_response()
    }
}

type Reply<T> = Result<Json<T>, Failure>;

async fn info() -> Json<ServerInfo> {
    Json(ServerInfo { protocol: PROTOCOL_VERSION, server: SERVER_AGENT.into() })
}

fn valid_user_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

async fn login(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Reply<Session> {
    let Json(req) = body.map_err(|e| Failure(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, e.body_text()))?;
    if !valid_user_name(req.user.as_str()) {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "user names are 1 to 64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit".into(),
        ));
    }
    if req.user.as_str() == ECHO_USER {
        return Err(Failure(
            StatusCode::FORBIDDEN,
            ErrorCode::BadRequest,
            "\"echo\" is the echo bot; pick another name".into(),
        ));
    }
    let display_name = req.display_name.unwrap_or_else(|| req.user.to_string());
    let display_name = display_name.trim().to_owned();
    if display_name.is_empty() || display_name.chars().count() > 64 || display_name.chars().any(char::is_control) {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "display names are 1 to 64 printable characters".into(),
        ));
    }
    let device = match req.device {
        Some(d)
            if !d.as_str().is_empty() && d.as_str().len() <= 64 && d.as_str().chars().all(|c| c.is_ascii_graphic()) =>
        {
            d
        }
        Some(_) => {
            return Err(Failure(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                "device ids are 1 to 64 printable ASCII characters".into(),
            ));
        }
        None => DeviceId(format!("dev-{:016x}", rand::random::<u64>())),
    };
    crate::register_user(&shared, req.user.clone(), display_name.clone())
        .await
        .map_err(|e| Failure(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Internal, e.to_string()))?;
    let ttl_ms = req.ttl_seconds.map(|s| s.max(1).saturating_mul(1000)).unwrap_or(u64::MAX);
    Ok(Json(issue(&shared, req.user, device, display_name, ttl_ms)))
}

/// Issues a token that lives `ttl_ms`, capped at the server's configured lifetime.
fn issue(shared: &Shared, user: UserId, device: DeviceId, display_name: String, ttl_ms: u64) -> Session {
    let expires_at = crate::now().saturating_add_ms(ttl_ms.min(shared.config.token_ttl_ms));
    let claims = Claims { user: user.clone(), device: device.clone(), expires_at };
    Session { token: shared.signer.issue(&claims), user, display_name, device, expires_at }
}

fn bearer(shared: &Shared, headers: &HeaderMap) -> Result<Claims, Failure> {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Err(Failure(
            StatusCode::UNAUTHORIZED,
            ErrorCode::NotAuthenticated,
            "send Authorization: Bearer <token>".into(),
        ));
    };
    let Some(token) = value.strip_prefix("Bearer ") else {
        return Err(Failure(
            StatusCode::UNAUTHORIZED,
            ErrorCode::NotAuthenticated,
            "send Authorization: Bearer <token>".into(),
        ));
    };
    shared.signer.verify(token, crate::now()).map_err(|e| {
        let code = match e {
            TokenError::Invalid => ErrorCode::TokenInvalid,
            TokenError::Expired => ErrorCode::TokenExpired,
        };
        Failure(StatusCode::UNAUTHORIZED, code, e.to_string())
    })
}

async fn refresh(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Reply<Session> {
    let claims = bearer(&shared, &headers)?;
    let display_name =
        shared.store.display_name(&claims.user).ok().flatten().unwrap_or_else(|| claims.user.to_string());
    Ok(Json(issue(&shared, claims.user, claims.device, display_name, u64::MAX)))
}

async fn turn(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Reply<TurnCredentials> {
    let claims = bearer(&shared, &headers)?;
    let mut credentials = match &shared.config.turn {
        Some(config) => crate::turn::credentials(config, &claims.user, crate::now()),
        None => {
            TurnCredentials { username: String::new(), credential: String::new(), ttl_seconds: 0, uris: Vec::new() }
        }
    };
    credentials.uris.extend(shared.config.stun_uris.iter().cloned());
    Ok(Json(credentials))
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
}

async fn history(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HistoryQuery>,
) -> Reply<calldock_protocol::History> {
    let claims = bearer(&shared, &headers)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let store = shared.store.clone();
    let user = claims.user;
    let history = tokio::task::spawn_blocking(move || store.history(&user, limit))
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, e.to_string()))?
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, e.to_string()))?;
    Ok(Json(history))
}
