//! HTTP: health, readiness, Prometheus metrics and the admin JSON API.
//! Store reads run on actix-web's blocking pool, never on the IO threads.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use actix::Addr;
use actix_web::{
    dev::Server,
    get,
    http::StatusCode,
    post,
    web::{self, Data, Json, Path, Query},
    App, HttpResponse, HttpServer, ResponseError,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

use crate::{
    config::MailboxConfig,
    mailbox::{probe::probe, status::Board, Control, Lookup, MailboxActor, MailboxSupervisor},
    store::{Entry, Rejection, Store, StoreError, Ticket},
    telemetry,
};

/// Most items one page returns.
pub const MAX_PAGE: usize = 1000;
/// Items per page when `limit` is not given.
pub const DEFAULT_PAGE: usize = 100;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// Tickets, feed, rejections.
    pub store: Arc<dyn Store>,
    /// Mailbox views.
    pub board: Board,
    /// False once shutdown begins: /readyz turns 503.
    pub ready: Arc<AtomicBool>,
    /// Passed to test-connection's session (response size bound).
    pub max_message_bytes: u32,
    /// Routes operator requests to mailbox actors.
    pub supervisor: Addr<MailboxSupervisor>,
    /// Ticks on every writer commit: long-polling feed readers wait on it.
    pub commits: watch::Receiver<u64>,
}

/// An API failure: a stable code and a message.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the request could not be completed: {0}")]
    Internal(String),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = match self {
            Self::NotFound(_) => "not_found",
            Self::Store(_) => "store_error",
            Self::Internal(_) => "internal_error",
        };
        HttpResponse::build(self.status_code())
            .json(json!({"error": {"code": code, "message": self.to_string()}}))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    web::block(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

#[get("/readyz")]
async fn readyz(s: Data<ApiState>) -> HttpResponse {
    if s.ready.load(Ordering::Relaxed) {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "shutting_down"}))
    }
}

#[get("/metrics")]
async fn metrics(s: Data<ApiState>) -> HttpResponse {
    s.board.export_sync_age(chrono::Utc::now());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(telemetry::render())
}

#[get("/api/mailboxes")]
async fn mailboxes(s: Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok().json(s.board.all())
}

#[get("/api/mailboxes/{id}")]
async fn mailbox(s: Data<ApiState>, id: Path<String>) -> Result<HttpResponse, ApiError> {
    s.board
        .get(&id)
        .map(|v| HttpResponse::Ok().json(v))
        .ok_or_else(|| ApiError::NotFound(format!("no mailbox {:?} is configured", id.as_str())))
}

async fn lookup(
    s: &ApiState,
    id: &str,
) -> Result<(Addr<MailboxActor>, Arc<MailboxConfig>), ApiError> {
    s.supervisor
        .send(Lookup(id.to_owned()))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(|| ApiError::NotFound(format!("no mailbox {id:?} is configured")))
}

#[post("/api/mailboxes/{id}/test")]
async fn test_mailbox(s: Data<ApiState>, id: Path<String>) -> Result<HttpResponse, ApiError> {
    let (_, cfg) = lookup(&s, &id).await?;
    Ok(HttpResponse::Ok().json(probe(&cfg, s.max_message_bytes).await))
}

async fn control(s: &ApiState, id: &str, c: Control) -> Result<HttpResponse, ApiError> {
    let (addr, _) = lookup(s, id).await?;
    let view = addr
        .send(c)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok().json(view))
}

#[post("/api/mailboxes/{id}/pause")]
async fn pause(s: Data<ApiState>, id: Path<String>) -> Result<HttpResponse, ApiError> {
    control(&s, &id, Control::Pause).await
}

#[post("/api/mailboxes/{id}/resume")]
async fn resume(s: Data<ApiState>, id: Path<String>) -> Result<HttpResponse, ApiError> {
    control(&s, &id, Control::Resume).await
}

#[post("/api/mailboxes/{id}/retry")]
async fn retry(s: Data<ApiState>, id: Path<String>) -> Result<HttpResponse, ApiError> {
    control(&s, &id, Control::Retry).await
}

/// The longest `wait` a feed request may ask for, in seconds.
pub const MAX_WAIT_SECONDS: u64 = 30;

/// Cursor paging parameters.
#[derive(Debug, Deserialize)]
struct Page {
    mailbox: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
    /// Seconds to wait for a change when there is none yet (long poll).
    wait: Option<u64>,
}

impl Page {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
    }
}

#[derive(Serialize)]
struct TicketPage {
    tickets: Vec<Ticket>,
    /// Pass as `after` for the next page; `null` when nothing newer exists yet.
    next: Option<u64>,
}

/// Tickets changed after the cursor `after`, oldest first. With `wait`, an
/// empty page is held until the writer commits or `wait` seconds pass, so a
/// consumer follows the feed without polling.
#[get("/api/tickets")]
async fn tickets(s: Data<ApiState>, q: Query<Page>) -> Result<Json<TicketPage>, ApiError> {
    let q = Arc::new(q.into_inner());
    let wait = Duration::from_secs(q.wait.unwrap_or(0).min(MAX_WAIT_SECONDS));
    let deadline = tokio::time::Instant::now() + wait;
    let mut commits = s.commits.clone();
    loop {
        // Marked seen before reading: a commit after the read wakes us.
        commits.borrow_and_update();
        let page = ticket_page(s.store.clone(), q.clone()).await?;
        if !page.tickets.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(page));
        }
        match tokio::time::timeout_at(deadline, commits.changed()).await {
            Ok(Ok(())) => {}
            // Timed out, or the writer is gone (shutdown): answer as is.
            Ok(Err(_)) | Err(_) => return Ok(Json(page)),
        }
    }
}

async fn ticket_page(store: Arc<dyn Store>, q: Arc<Page>) -> Result<TicketPage, ApiError> {
    blocking(move || {
        let changes = store.changes(q.after.unwrap_or(0), q.limit(), q.mailbox.as_deref())?;
        let next = changes.last().map(|c| c.seq);
        let mut seen = std::collections::HashSet::new();
        let mut changed = Vec::new();
        for c in changes {
            if seen.insert(c.ticket) {
                changed.extend(store.ticket(c.ticket)?);
            }
        }
        Ok(TicketPage {
            tickets: changed,
            next,
        })
    })
    .await
}

#[derive(Serialize)]
struct TicketWithConversation {
    #[serde(flatten)]
    ticket: Ticket,
    conversation: Vec<Entry>,
}

#[get("/api/tickets/{id}")]
async fn ticket(
    s: Data<ApiState>,
    id: Path<u64>,
) -> Result<Json<TicketWithConversation>, ApiError> {
    let store = s.store.clone();
    let id = id.into_inner();
    blocking(move || {
        let ticket = store
            .ticket(id)?
            .ok_or_else(|| ApiError::NotFound(format!("no ticket {id}")))?;
        let conversation = store.entries(id)?;
        Ok(Json(TicketWithConversation {
            ticket,
            conversation,
        }))
    })
    .await
}

/// A raw message as fetched, by the `raw_sha256` its entry or rejection names.
#[get("/api/messages/{sha256}/raw")]
async fn raw_message(s: Data<ApiState>, sha256: Path<String>) -> Result<HttpResponse, ApiError> {
    let store = s.store.clone();
    let sha256 = sha256.into_inner();
    let raw = blocking(move || {
        store
            .blob(&sha256)?
            .ok_or_else(|| ApiError::NotFound(format!("no raw message {sha256:?}")))
    })
    .await?;
    Ok(HttpResponse::Ok().content_type("message/rfc822").body(raw))
}

#[derive(Serialize)]
struct RejectionPage {
    rejections: Vec<Rejection>,
    next: Option<u64>,
}

#[get("/api/rejections")]
async fn rejections(s: Data<ApiState>, q: Query<Page>) -> Result<Json<RejectionPage>, ApiError> {
    let store = s.store.clone();
    blocking(move || {
        let rejections = store.rejections(q.after.unwrap_or(0), q.limit())?;
        let next = rejections.last().map(|r| r.id);
        Ok(Json(RejectionPage { rejections, next }))
    })
    .await
}

/// Binds the HTTP server; it runs on the current actix System.
pub fn serve(state: ApiState, listen: std::net::SocketAddr) -> std::io::Result<Server> {
    let data = Data::new(state);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .service(healthz)
            .service(readyz)
            .service(metrics)
            .service(mailboxes)
            .service(mailbox)
            .service(test_mailbox)
            .service(pause)
            .service(resume)
            .service(retry)
            .service(tickets)
            .service(ticket)
            .service(raw_message)
            .service(rejections)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(listen)?
    .run())
}
