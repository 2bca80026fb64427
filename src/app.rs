//! The gateway's root: builds the stages in flow order, serves HTTP, and on
//! SIGTERM / Ctrl-C shuts down in two phases within a deadline — mailboxes
//! first (IDLE DONE, LOGOUT), then the edges drain in stage order and the
//! writer commits what it holds.

use std::{
    path::{Path, PathBuf},
    sync::{atomic::AtomicBool, atomic::Ordering, Arc},
    time::Duration,
};

use actix::{Actor, Addr, Arbiter, SyncArbiter};
use tokio::{
    sync::{mpsc, watch},
    time::{timeout, Instant},
};

use crate::{
    config::{self, Config, MailboxConfig},
    http::{self, ApiState},
    mailbox::{
        admission::Admission, schedule::SystemClock, status::Board, MailboxSupervisor, Reload,
        Shared,
    },
    parse::Parser,
    pipeline::Edge,
    store::{RocksStore, Store, StoreError},
    telemetry,
    write::{self, Flush, Writer},
};

/// How often shutdown looks at the edges while they drain.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data directory could not be created.
    #[error("cannot create data_dir {path}: {reason}; check the path and permissions")]
    DataDir {
        /// The directory.
        path: String,
        /// OS error.
        reason: String,
    },
    /// The HTTP listener could not be bound.
    #[error("cannot listen on {addr}: {reason}; pick a free address in gateway.listen")]
    Listen {
        /// The address.
        addr: String,
        /// OS error.
        reason: String,
    },
}

/// Runs the gateway until SIGTERM or Ctrl-C.
/// `config_path` is read again on SIGHUP.
pub async fn run(mut cfg: Config, config_path: PathBuf) -> Result<(), AppError> {
    telemetry::install();
    let dir = &cfg.gateway.data_dir;
    std::fs::create_dir_all(dir).map_err(|e| AppError::DataDir {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let store: Arc<dyn Store> = Arc::new(RocksStore::open(dir)?);
    let counters = store.counters()?;
    telemetry::store_memory_budget(store.memory_budget());

    // Stages, last first, so each knows the edge into the next.
    let writer_thread = Arbiter::new();
    let (st, max_batch, delay, nice) = (
        store.clone(),
        cfg.pipeline.max_batch,
        cfg.pipeline.commit_delay,
        cfg.pipeline.writer_nice,
    );
    let (commits, commit_watch) = watch::channel(0);
    let writer = Writer::start_in_arbiter(&writer_thread.handle(), move |_| {
        // Made before the writer's thread takes its nice value: its release
        // thread frees batches beside the writer, at the process's priority,
        // rather than preempting it on each hand-over.
        let writer = Writer::new(st, counters, max_batch, commits).with_commit_delay(delay);
        if let Err(e) = write::set_thread_nice(nice) {
            tracing::warn!(
                nice,
                error = %e,
                "writer_priority_unchanged: the ticket writer's thread could not take nice {nice}; \
                 it runs at the process's priority and, under load, waits on the parser and mailbox \
                 threads (a lower burst rate). Grant CAP_SYS_NICE (systemd: \
                 AmbientCapabilities=CAP_SYS_NICE or LimitNICE=) or set pipeline.writer_nice = 0"
            );
        }
        writer
    });
    let write_edge = Edge::new("write", writer.clone(), cfg.pipeline.write_queue);
    let to_writer = write_edge.clone();
    let parsers = SyncArbiter::start(cfg.pipeline.parsers, move || Parser::new(to_writer.clone()));
    let parse_edge = Edge::new("parse", parsers, cfg.pipeline.parse_queue);

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (alive, mut all_ended) = mpsc::channel::<()>(1);
    let board = Board::default();
    let io_threads: Vec<Arbiter> = (0..cfg.gateway.io_threads)
        .map(|_| Arbiter::new())
        .collect();
    let shared = Shared {
        pipeline: Arc::new(cfg.pipeline.clone()),
        parse: parse_edge.clone(),
        store: store.clone(),
        board: board.clone(),
        clock: Arc::new(SystemClock),
        admission: Arc::new(Admission::new(
            cfg.gateway.max_concurrent_logins_per_host,
            cfg.gateway.logins_per_second_per_host,
        )),
        shutdown: shutdown_rx,
        alive: alive.downgrade(),
    };
    let handles = io_threads.iter().map(Arbiter::handle).collect();
    let mailboxes = shared_configs(std::mem::take(&mut cfg.mailboxes));
    let mailbox_count = mailboxes.len();
    let supervisor = MailboxSupervisor::new(mailboxes, handles, shared).start();

    let ready = Arc::new(AtomicBool::new(true));
    let api = ApiState {
        store,
        board,
        ready: ready.clone(),
        max_message_bytes: cfg.pipeline.max_message_bytes,
        supervisor: supervisor.clone(),
        commits: commit_watch,
    };
    let listen = cfg.gateway.listen;
    let server = http::serve(api, listen).map_err(|e| AppError::Listen {
        addr: listen.to_string(),
        reason: e.to_string(),
    })?;
    let server_handle = server.handle();
    actix::spawn(server);
    tracing::info!(%listen, mailboxes = mailbox_count, "mailgate running");

    serve_until_stopped(&config_path, &supervisor).await;
    let deadline = Instant::now() + cfg.gateway.shutdown_grace;
    tracing::info!(grace = ?cfg.gateway.shutdown_grace, "shutting down");
    ready.store(false, Ordering::Relaxed);

    // Phase 1: mailboxes stop fetching and log out.
    let _ = shutdown_tx.send(true);
    drop(alive);
    if timeout_at(deadline, all_ended.recv()).await.is_none() {
        tracing::warn!("some mailbox sessions did not end in time");
    }
    // Phase 2: the edges drain in stage order, then the writer flushes.
    let drained = timeout_at(deadline, async {
        while !parse_edge.is_empty() || !write_edge.is_empty() {
            tokio::time::sleep(DRAIN_POLL).await;
        }
        let _ = writer.send(Flush).await;
    })
    .await;
    if drained.is_none() {
        tracing::warn!(
            parse = parse_edge.depth(),
            write = write_edge.depth(),
            "pipeline did not drain before the deadline; the uncommitted tail is fetched again on start"
        );
    }
    server_handle.stop(true).await;
    // Join the threads that hold the store before returning: RocksDB must
    // close before the process exits, or its exit-time destructors race a
    // live database ("pthread lock: Invalid argument" and a failed exit).
    for a in std::iter::once(writer_thread).chain(io_threads) {
        a.stop();
        let _ = a.join();
    }
    tracing::info!("stopped");
    Ok(())
}

async fn timeout_at<F: std::future::Future>(deadline: Instant, f: F) -> Option<F::Output> {
    timeout(deadline.saturating_duration_since(Instant::now()), f)
        .await
        .ok()
}

/// Waits for SIGTERM or Ctrl-C; on each SIGHUP in between, reloads the
/// mailboxes from `path`. A file with errors is reported and ignored: the
/// running configuration stays.
async fn serve_until_stopped(path: &Path, supervisor: &Addr<MailboxSupervisor>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = recv(&mut term) => return,
            _ = recv(&mut hup) => reload(path, supervisor).await,
        }
    }
}

async fn recv(sig: &mut Option<tokio::signal::unix::Signal>) {
    match sig.as_mut() {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

async fn reload(path: &Path, supervisor: &Addr<MailboxSupervisor>) {
    match config::load(path) {
        Err(errors) => {
            for e in &errors.0 {
                tracing::error!(error = %e, "reload rejected; the running configuration stays");
            }
        }
        Ok(next) => {
            // Only mailboxes change on reload; [gateway] and [pipeline]
            // need a restart.
            let mailboxes = shared_configs(next.mailboxes);
            if let Err(e) = supervisor.send(Reload(mailboxes)).await {
                tracing::error!(error = %e, "reload could not reach the mailbox supervisor");
            }
        }
    }
}

/// The mailboxes as the actors share them. Collected into a new vector: an
/// in-place `collect` would keep the configs' allocation (~600 B a
/// mailbox) behind 8-byte pointers for the life of the gateway.
fn shared_configs(configs: Vec<MailboxConfig>) -> Vec<Arc<MailboxConfig>> {
    let mut shared = Vec::with_capacity(configs.len());
    shared.extend(configs.into_iter().map(Arc::new));
    shared
}
