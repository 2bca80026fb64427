//! Watching a running gateway from outside, as an operator would: its
//! `/metrics`, its API, and its ticket feed, each ticket timed from the
//! moment the farm injected its message to the moment the feed shows it
//! committed (the feed long-polls, so that moment is the commit).

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::farm::Farm;
use crate::message::parse_subject;

/// A gateway's HTTP listener.
#[derive(Clone, Copy, Debug)]
pub struct GatewayApi {
    addr: SocketAddr,
}

impl GatewayApi {
    /// The API at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr }
    }

    /// `GET path` with HTTP/1.0: (status, body).
    pub fn get(&self, path: &str, timeout: Duration) -> io::Result<(u16, String)> {
        self.request("GET", path, timeout)
    }

    /// `method path` with HTTP/1.0 and no body: (status, body).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        timeout: Duration,
    ) -> io::Result<(u16, String)> {
        let mut s = TcpStream::connect_timeout(&self.addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"
        )?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "not an HTTP response");
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(bad)?;
        let body = text.split_once("\r\n\r\n").ok_or_else(bad)?.1.to_owned();
        Ok((status, body))
    }

    /// `GET path` expecting 200 and JSON.
    pub fn json(&self, path: &str, timeout: Duration) -> io::Result<Value> {
        let (status, body) = self.get(path, timeout)?;
        if status != 200 {
            return Err(io::Error::other(format!("GET {path}: {status} {body}")));
        }
        serde_json::from_str(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// The gateway's metrics now.
    pub fn metrics(&self) -> io::Result<Metrics> {
        let (_, text) = self.get("/metrics", Duration::from_secs(10))?;
        Ok(Metrics::parse(&text))
    }
}

/// Samples of a Prometheus text exposition.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    samples: Vec<(String, f64)>,
}

impl Metrics {
    /// Parses the text format (comments skipped).
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect();
        Self { samples }
    }

    /// The value of one series, written as in the exposition:
    /// `name` or `name{label="v"}`.
    pub fn value(&self, series: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| *v)
    }

    /// The sum over every series of metric `name`.
    pub fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(s, _)| s == name || s.strip_prefix(name).is_some_and(|r| r.starts_with('{')))
            .map(|(_, v)| v)
            .sum()
    }
}

/// Follows the ticket feed and times each farm message.
pub struct Feed {
    api: GatewayApi,
    farm: Arc<Farm>,
    after: u64,
    /// Tickets seen so far.
    pub tickets: u64,
    /// Tickets whose subject is not a farm message's.
    pub foreign: u64,
    /// Farm messages seen as a ticket more than once.
    pub duplicates: u64,
    /// Injection → commit of each farm message seen.
    pub latencies: Latencies,
    /// When each distinct farm message's ticket was created (the gateway
    /// stamps it as it builds the batch, milliseconds before the commit),
    /// seconds since the Unix epoch.
    created: Vec<f64>,
    seen: HashSet<(u32, u32)>,
}

impl Feed {
    /// A follower from the start of the feed.
    pub fn new(api: GatewayApi, farm: Arc<Farm>) -> Self {
        Self {
            api,
            farm,
            after: 0,
            tickets: 0,
            foreign: 0,
            duplicates: 0,
            latencies: Latencies::default(),
            created: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Distinct farm messages seen as tickets.
    pub fn distinct(&self) -> usize {
        self.seen.len()
    }

    /// The first `n` farm tickets' creation times as a commit series:
    /// (seconds after `since`, tickets by then), in time order.
    pub fn commit_series(&self, since: SystemTime, n: usize) -> Vec<(f64, u64)> {
        let origin = since
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let mut times = self.created.clone();
        times.sort_by(f64::total_cmp);
        times
            .into_iter()
            .take(n)
            .zip(1..)
            .map(|(t, count)| (t - origin, count))
            .collect()
    }

    /// Reads the feed to its current end; the number of new tickets.
    pub fn catch_up(&mut self) -> io::Result<usize> {
        let mut total = 0;
        loop {
            match self.poll(Duration::ZERO)? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }

    /// Reads one page, waiting up to `wait` for a commit when there is
    /// none yet; the number of new tickets.
    pub fn poll(&mut self, wait: Duration) -> io::Result<usize> {
        let path = format!(
            "/api/tickets?after={}&limit=1000&wait={}",
            self.after,
            wait.as_secs()
        );
        let page = self.api.json(&path, wait + Duration::from_secs(30))?;
        let seen = Instant::now();
        let tickets = page["tickets"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        for ticket in tickets {
            let subject = ticket["subject"].as_str().unwrap_or_default();
            let message = parse_subject(subject)
                .and_then(|(u, uid)| Some(((u, uid), self.farm.injected_at(u, uid)?)));
            match message {
                Some((key, at)) if self.seen.insert(key) => {
                    self.latencies.record(seen.saturating_duration_since(at));
                    if let Some(t) = ticket["created_at"].as_str().and_then(epoch_seconds) {
                        self.created.push(t);
                    }
                }
                Some(_) => self.duplicates += 1,
                None => self.foreign += 1,
            }
        }
        self.tickets += tickets.len() as u64;
        // A ticket shows up again in the feed when a reply joins it; farm
        // messages never reply, so a second sighting is a doubled message.
        if let Some(next) = page["next"].as_u64() {
            self.after = next;
        }
        Ok(tickets.len())
    }
}

/// An RFC 3339 time as seconds since the Unix epoch.
fn epoch_seconds(rfc3339: &str) -> Option<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?;
    Some(t.timestamp_micros() as f64 / 1e6)
}

/// Latency samples, in microseconds.
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    micros: Vec<u64>,
}

impl Latencies {
    /// Adds one sample.
    pub fn record(&mut self, latency: Duration) {
        self.micros
            .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Samples recorded.
    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// The `q` quantile (0..=1), nearest rank; `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).max(1);
        sorted.get(rank - 1).map(|us| Duration::from_micros(*us))
    }

    /// How many samples fall at or under each bound (and, last, above the
    /// last bound), in milliseconds: a histogram.
    pub fn histogram(&self, bounds_ms: &[u64]) -> Vec<u64> {
        let mut counts = vec![0; bounds_ms.len() + 1];
        for us in &self.micros {
            let i = bounds_ms
                .iter()
                .position(|b| *us <= b * 1000)
                .unwrap_or(bounds_ms.len());
            counts[i] += 1;
        }
        counts
    }

    /// Keeps only the newest `n` samples (a rolling window).
    pub fn keep_last(&mut self, n: usize) {
        let excess = self.micros.len().saturating_sub(n);
        self.micros.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_read_by_series_and_by_name() {
        let m = Metrics::parse(
            "# HELP x\nmailgate_mailboxes{state=\"idle\"} 3\nmailgate_mailboxes{state=\"connecting\"} 2\nmailgate_mailboxes_total 9\nup 1\n",
        );
        assert_eq!(m.value("mailgate_mailboxes{state=\"idle\"}"), Some(3.0));
        assert_eq!(m.sum("mailgate_mailboxes"), 5.0);
        assert_eq!(m.value("up"), Some(1.0));
        assert_eq!(m.value("down"), None);
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let mut l = Latencies::default();
        assert_eq!(l.quantile(0.5), None);
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        assert_eq!(l.quantile(0.5), Some(Duration::from_millis(50)));
        assert_eq!(l.quantile(0.99), Some(Duration::from_millis(99)));
        assert_eq!(l.quantile(1.0), Some(Duration::from_millis(100)));
        assert_eq!(l.histogram(&[10, 50]), [10, 40, 50]);
        l.keep_last(10);
        assert_eq!(l.quantile(0.0), Some(Duration::from_millis(91)));
    }
}
