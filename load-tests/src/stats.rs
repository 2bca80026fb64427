//! Counters the farm keeps about its clients: what a load test reports
//! about the server side (concurrent logins, sessions in IDLE, fetches).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the farm's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections open now.
    pub connections: u64,
    /// Connections accepted since start.
    pub accepted_total: u64,
    /// Connections open and not yet logged in (TLS handshake, greeting,
    /// LOGIN in flight) now.
    pub logins_in_flight: u64,
    /// The most `logins_in_flight` ever seen at once (reset with
    /// [`Farm::reset_login_peak`](crate::Farm::reset_login_peak)).
    pub logins_in_flight_peak: u64,
    /// Successful logins since start.
    pub logins_total: u64,
    /// Refused logins since start.
    pub login_failures_total: u64,
    /// Sessions inside IDLE now.
    pub idling: u64,
    /// Message bodies sent since start.
    pub bodies_fetched_total: u64,
    /// Messages injected or appended since start.
    pub messages_total: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    connections: AtomicU64,
    accepted_total: AtomicU64,
    logins_in_flight: AtomicU64,
    logins_in_flight_peak: AtomicU64,
    logins_total: AtomicU64,
    login_failures_total: AtomicU64,
    idling: AtomicU64,
    bodies_fetched_total: AtomicU64,
    pub(crate) messages_total: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            connections: get(&self.connections),
            accepted_total: get(&self.accepted_total),
            logins_in_flight: get(&self.logins_in_flight),
            logins_in_flight_peak: get(&self.logins_in_flight_peak),
            logins_total: get(&self.logins_total),
            login_failures_total: get(&self.login_failures_total),
            idling: get(&self.idling),
            bodies_fetched_total: get(&self.bodies_fetched_total),
            messages_total: get(&self.messages_total),
        }
    }

    pub(crate) fn reset_login_peak(&self) {
        let now = self.logins_in_flight.load(Ordering::Relaxed);
        self.logins_in_flight_peak.store(now, Ordering::Relaxed);
    }

    /// Counts a new connection: open and not logged in until the guard says so.
    pub(crate) fn accepted(&self) -> ConnectionGuard<'_> {
        self.accepted_total.fetch_add(1, Ordering::Relaxed);
        self.connections.fetch_add(1, Ordering::Relaxed);
        let now = self.logins_in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.logins_in_flight_peak.fetch_max(now, Ordering::Relaxed);
        ConnectionGuard {
            counters: self,
            logged_in: false,
            idling: false,
        }
    }

    pub(crate) fn login_failed(&self) {
        self.login_failures_total.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn body_fetched(&self) {
        self.bodies_fetched_total.fetch_add(1, Ordering::Relaxed);
    }
}

/// Keeps the gauges true for one connection, however it ends.
#[derive(Debug)]
pub(crate) struct ConnectionGuard<'a> {
    counters: &'a Counters,
    logged_in: bool,
    idling: bool,
}

impl ConnectionGuard<'_> {
    pub(crate) fn logged_in(&mut self) {
        if !self.logged_in {
            self.logged_in = true;
            self.counters.logins_total.fetch_add(1, Ordering::Relaxed);
            self.counters
                .logins_in_flight
                .fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn set_idling(&mut self, on: bool) {
        if self.idling != on {
            self.idling = on;
            if on {
                self.counters.idling.fetch_add(1, Ordering::Relaxed);
            } else {
                self.counters.idling.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.set_idling(false);
        if !self.logged_in {
            self.counters
                .logins_in_flight
                .fetch_sub(1, Ordering::Relaxed);
        }
        self.counters.connections.fetch_sub(1, Ordering::Relaxed);
    }
}
