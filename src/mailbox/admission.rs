//! Admission control against login storms: per server host, at most
//! `max_concurrent` connect-and-login attempts at once, started at most
//! `per_second` a second, at least one interval apart and jittered within
//! it. Every session passes here,
//! so a start-up or a server restart with thousands of mailboxes arrives at
//! the server as a steady, bounded trickle.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use rand::Rng;
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};

/// Default `[gateway].max_concurrent_logins_per_host`.
pub const DEFAULT_MAX_CONCURRENT: usize = 16;
/// Default `[gateway].logins_per_second_per_host`.
pub const DEFAULT_PER_SECOND: u32 = 50;

/// When logins to one host may start: a fixed interval apart.
#[derive(Debug)]
pub struct RateGate {
    interval: Duration,
    next: Option<Instant>,
}

impl RateGate {
    /// At most `per_second` starts a second.
    pub fn new(per_second: u32) -> Self {
        Self {
            interval: Duration::from_secs(1) / per_second.max(1),
            next: None,
        }
    }

    /// Reserves the next start at or after `now`, delayed by `jitter` (a
    /// fraction of the interval, 0.0..1.0), and answers when it is. Jitter
    /// spreads the starts without ever bringing two closer than the interval.
    pub fn reserve(&mut self, now: Instant, jitter: f64) -> Instant {
        let at =
            self.next.map_or(now, |n| n.max(now)) + self.interval.mul_f64(jitter.clamp(0.0, 1.0));
        self.next = Some(at + self.interval);
        at
    }
}

struct Host {
    slots: Arc<Semaphore>,
    rate: Mutex<RateGate>,
}

/// The per-host gates, shared by every mailbox.
pub struct Admission {
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    max_concurrent: usize,
    per_second: u32,
}

impl Admission {
    /// Gates allowing `max_concurrent` logins per host, `per_second` a second.
    pub fn new(max_concurrent: usize, per_second: u32) -> Self {
        Self {
            hosts: Mutex::new(HashMap::new()),
            max_concurrent,
            per_second,
        }
    }

    fn host(&self, name: &str) -> Arc<Host> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| {
                Arc::new(Host {
                    slots: Arc::new(Semaphore::new(self.max_concurrent)),
                    rate: Mutex::new(RateGate::new(self.per_second)),
                })
            })
            .clone()
    }

    /// Waits for a login slot on `host`; hold the permit until the login is
    /// done (or failed).
    pub async fn admit(&self, host: &str) -> Option<OwnedSemaphorePermit> {
        let gate = self.host(host);
        let permit = gate.slots.clone().acquire_owned().await.ok()?;
        let jitter = rand::thread_rng().gen_range(0.0..0.5);
        let at = {
            let mut rate = gate.rate.lock().unwrap_or_else(|p| p.into_inner());
            rate.reserve(Instant::now(), jitter)
        };
        tokio::time::sleep_until(at).await;
        Some(permit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_spaced_by_the_rate() {
        let mut gate = RateGate::new(10);
        let t0 = Instant::now();
        assert_eq!(gate.reserve(t0, 0.0), t0);
        assert_eq!(gate.reserve(t0, 0.0), t0 + Duration::from_millis(100));
        assert_eq!(gate.reserve(t0, 0.5), t0 + Duration::from_millis(250));
        // Jitter never brings the next start closer than one interval.
        assert_eq!(gate.reserve(t0, 0.0), t0 + Duration::from_millis(350));
        // After a quiet spell, the next start is immediate again.
        let later = t0 + Duration::from_secs(5);
        assert_eq!(gate.reserve(later, 0.0), later);
    }

    #[tokio::test]
    async fn concurrency_is_bounded_per_host() {
        let a = Arc::new(Admission::new(2, 1000));
        let p1 = a.admit("imap.example.com").await;
        let p2 = a.admit("IMAP.example.com").await;
        assert!(p1.is_some() && p2.is_some());
        let third =
            tokio::time::timeout(Duration::from_millis(50), a.admit("imap.example.com")).await;
        assert!(third.is_err(), "a third login must wait");
        assert!(
            a.admit("other.example.com").await.is_some(),
            "hosts are independent"
        );
        drop(p1);
        assert!(a.admit("imap.example.com").await.is_some());
    }
}
