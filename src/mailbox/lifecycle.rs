//! The lifecycle of one folder session as a pure state machine: the actor
//! feeds it events with the current time, and it answers with the state to
//! show and when to connect next. No clock, timer or IO inside, so every
//! schedule is unit-tested with plain timestamps.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rand::Rng;

use super::{
    error::Disposition,
    schedule::{Backoff, SkipWindow},
    status::MailboxState,
};

/// A session that stayed healthy this long starts its next failure count from zero.
pub const DEFAULT_STABLE_PERIOD: Duration = Duration::from_secs(60);

/// The rules one mailbox's sessions follow.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Consecutive failures before cooling off.
    pub max_tries: u32,
    /// Rest after `max_tries` failures.
    pub cool_off: Duration,
    /// Delay between tries within a round.
    pub backoff: Backoff,
    /// Healthy time after which the failure count starts again.
    pub stable_period: Duration,
    /// Windows without connections.
    pub skip_times: Vec<SkipWindow>,
    /// Zone the windows are read in.
    pub timezone: Tz,
}

/// What the actor should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Open the session now.
    Connect,
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// Do nothing until an operator acts (retry, config reload).
    WaitForOperator,
    /// The gateway is stopping.
    Stop,
}

/// One folder session's lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Lifecycle {
    policy: Policy,
    state: MailboxState,
    failures: u32,
    healthy_since: Option<DateTime<Utc>>,
}

fn at(now: DateTime<Utc>, delay: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX)
}

impl Lifecycle {
    /// A lifecycle that has not connected yet, in `initial` state.
    pub fn new(policy: Policy, initial: MailboxState) -> Self {
        Self {
            policy,
            state: initial,
            failures: 0,
            healthy_since: None,
        }
    }

    /// The state to show.
    pub fn state(&self) -> MailboxState {
        self.state
    }

    /// Consecutive failures in the current round.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The actor is about to connect: inside a skip window it must not, and
    /// learns when the window ends instead.
    pub fn before_connect(&mut self, now: DateTime<Utc>) -> Next {
        let tz = self.policy.timezone;
        let inside = self
            .policy
            .skip_times
            .iter()
            .filter(|w| w.contains(now, tz));
        match inside.map(|w| w.ends_after(now, tz)).max() {
            Some(end) => {
                self.state = MailboxState::Skipped;
                Next::RetryAt(end)
            }
            None => {
                self.state = MailboxState::Connecting;
                Next::Connect
            }
        }
    }

    /// The session is catching up.
    pub fn syncing(&mut self) {
        self.state = MailboxState::Syncing;
    }

    /// The session is caught up and waiting in IDLE.
    pub fn idle(&mut self, now: DateTime<Utc>) {
        self.state = MailboxState::Idle;
        self.healthy_since.get_or_insert(now);
    }

    /// The session ended with a failure classified as `disposition`; the
    /// server may have named a least wait (`retry_after`).
    pub fn failed(
        &mut self,
        disposition: Disposition,
        retry_after: Option<Duration>,
        now: DateTime<Utc>,
        rng: &mut impl Rng,
    ) -> Next {
        let stable = self
            .healthy_since
            .take()
            .is_some_and(|since| at(since, self.policy.stable_period) <= now);
        if stable {
            self.failures = 0;
        }
        self.failures += 1;
        if disposition == Disposition::NeedsAction {
            self.state = MailboxState::NeedsReauth;
            return Next::WaitForOperator;
        }
        if self.failures >= self.policy.max_tries {
            self.state = MailboxState::CoolOff;
            self.failures = 0;
            return Next::RetryAt(at(now, self.policy.cool_off));
        }
        self.state = MailboxState::Backoff;
        let delay = self.policy.backoff.delay(self.failures, rng);
        Next::RetryAt(at(now, delay.max(retry_after.unwrap_or_default())))
    }

    /// The session ended because the gateway is stopping.
    pub fn stopped(&mut self) -> Next {
        self.state = MailboxState::Stopped;
        Next::Stop
    }

    /// An operator paused the mailbox.
    pub fn paused(&mut self) -> Next {
        self.state = MailboxState::Paused;
        Next::WaitForOperator
    }

    /// An operator asked for a fresh try: the round starts over.
    pub fn retry(&mut self) {
        self.failures = 0;
        self.healthy_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::{rngs::StdRng, SeedableRng};

    fn policy(skip: &[&str], tz: &str) -> Policy {
        Policy {
            max_tries: 3,
            cool_off: Duration::from_secs(15 * 60),
            backoff: Backoff::new(Duration::from_secs(2), Duration::from_secs(60)).unwrap(),
            stable_period: DEFAULT_STABLE_PERIOD,
            skip_times: skip.iter().map(|s| s.parse().unwrap()).collect(),
            timezone: tz.parse().unwrap(),
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
    }

    fn secs(next: Next, from: DateTime<Utc>) -> i64 {
        match next {
            Next::RetryAt(t) => (t - from).num_seconds(),
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn backoff_then_cool_off_after_max_tries_then_a_new_round() {
        let mut l = Lifecycle::new(policy(&[], "UTC"), MailboxState::Connecting);
        let mut rng = StdRng::seed_from_u64(1);
        let now = t0();
        assert_eq!(l.before_connect(now), Next::Connect);
        let first = secs(l.failed(Disposition::Retry, None, now, &mut rng), now);
        assert!((1..=2).contains(&first), "{first}");
        assert_eq!(l.state(), MailboxState::Backoff);
        let second = secs(l.failed(Disposition::Retry, None, now, &mut rng), now);
        assert!((2..=4).contains(&second), "{second}");
        assert_eq!(
            secs(l.failed(Disposition::Retry, None, now, &mut rng), now),
            15 * 60
        );
        assert_eq!(l.state(), MailboxState::CoolOff);
        assert_eq!(l.failures(), 0);
        // A new round starts with the shortest delay again.
        let again = secs(l.failed(Disposition::Retry, None, now, &mut rng), now);
        assert!((1..=2).contains(&again), "{again}");
        assert_eq!(l.state(), MailboxState::Backoff);
    }

    #[test]
    fn a_suggested_wait_is_honoured() {
        let mut l = Lifecycle::new(policy(&[], "UTC"), MailboxState::Connecting);
        let mut rng = StdRng::seed_from_u64(4);
        let wait = Some(Duration::from_secs(30));
        assert_eq!(
            secs(l.failed(Disposition::Retry, wait, t0(), &mut rng), t0()),
            30
        );
    }

    #[test]
    fn rejected_credentials_wait_for_an_operator() {
        let mut l = Lifecycle::new(policy(&[], "UTC"), MailboxState::Connecting);
        let mut rng = StdRng::seed_from_u64(2);
        assert_eq!(
            l.failed(Disposition::NeedsAction, None, t0(), &mut rng),
            Next::WaitForOperator
        );
        assert_eq!(l.state(), MailboxState::NeedsReauth);
    }

    #[test]
    fn a_stable_session_starts_counting_again() {
        let mut l = Lifecycle::new(policy(&[], "UTC"), MailboxState::Connecting);
        let mut rng = StdRng::seed_from_u64(3);
        let now = t0();
        l.failed(Disposition::Retry, None, now, &mut rng);
        l.failed(Disposition::Retry, None, now, &mut rng);
        assert_eq!(l.failures(), 2);
        // Healthy, but not for long: the count goes on (and cools off).
        l.idle(now);
        l.failed(
            Disposition::Retry,
            None,
            now + chrono::Duration::seconds(5),
            &mut rng,
        );
        assert_eq!(l.state(), MailboxState::CoolOff);
        l.failed(Disposition::Retry, None, now, &mut rng);
        assert_eq!(l.failures(), 1);
        // Healthy for the stable period: the next failure is the first.
        l.idle(now);
        l.failed(
            Disposition::Retry,
            None,
            now + chrono::Duration::seconds(60),
            &mut rng,
        );
        assert_eq!(l.failures(), 1);
        assert_eq!(l.state(), MailboxState::Backoff);
    }

    #[test]
    fn no_connection_inside_a_skip_window_crossing_midnight_in_seoul() {
        // 23:00-01:00 in Seoul (UTC+9) is 14:00-16:00 UTC.
        let mut l = Lifecycle::new(
            policy(&["23:00-01:00"], "Asia/Seoul"),
            MailboxState::Connecting,
        );
        let inside = Utc.with_ymd_and_hms(2026, 11, 26, 15, 30, 0).unwrap(); // 00:30 in Seoul
        let end = Utc.with_ymd_and_hms(2026, 11, 26, 16, 0, 0).unwrap();
        assert_eq!(l.before_connect(inside), Next::RetryAt(end));
        assert_eq!(l.state(), MailboxState::Skipped);
        // Before midnight in Seoul the end is the next day's 01:00.
        let before_midnight = Utc.with_ymd_and_hms(2026, 11, 26, 14, 30, 0).unwrap();
        assert_eq!(l.before_connect(before_midnight), Next::RetryAt(end));
        assert_eq!(l.before_connect(end), Next::Connect);
        assert_eq!(l.state(), MailboxState::Connecting);
    }
}
