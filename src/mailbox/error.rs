//! The one place that classifies a mailbox failure: a stable code, an
//! operator-facing message, a remediation hint, and what the lifecycle does
//! next (retry with backoff, or wait for an operator).

use std::{fmt, time::Duration};

use serde::Serialize;

/// What the lifecycle does after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Transient: back off and reconnect.
    Retry,
    /// Retrying cannot help (and may lock the account): wait for an operator.
    NeedsAction,
}

/// A failure of a mailbox session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailboxError {
    /// TCP connect failed.
    #[error("cannot connect to {host}:{port}: {reason}")]
    Connect {
        /// Server.
        host: String,
        /// Port.
        port: u16,
        /// OS error.
        reason: String,
    },
    /// A step took longer than its deadline.
    #[error("{step} timed out after {millis} ms")]
    Timeout {
        /// Which step.
        step: &'static str,
        /// The deadline.
        millis: u128,
    },
    /// The server's certificate was not accepted.
    #[error("TLS certificate rejected: {0}")]
    TlsCertificate(String),
    /// The TLS handshake failed for another reason.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The server refused the credentials.
    #[error("login rejected by the server: {0}")]
    Auth(String),
    /// SELECT failed.
    #[error("folder {folder:?} cannot be selected: {reason}")]
    Folder {
        /// The folder.
        folder: String,
        /// Server text.
        reason: String,
    },
    /// The server ended the session.
    #[error("server closed the session: {0}")]
    Bye(String),
    /// The connection dropped.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// The server said something mailgate cannot use, or answered BAD.
    #[error("IMAP protocol error: {0}")]
    Protocol(String),
    /// The server answered a command NO.
    #[error("the server refused a command: {text}")]
    Refused {
        /// Server text.
        text: String,
        /// Its response code says the refusal will pass (UNAVAILABLE,
        /// INUSE, LIMIT: RFC 5530).
        temporary: bool,
    },
    /// The server does not offer STARTTLS though the mailbox requires it.
    #[error("the server does not offer STARTTLS")]
    StarttlsUnsupported,
    /// The OAuth 2 token endpoint refused to issue an access token.
    #[error("OAuth 2 access-token refresh failed: {0}")]
    OAuthRefresh(String),
    /// The server refused another connection for this user or address.
    #[error("the server refused another connection: {0}")]
    TooManyConnections(String),
    /// The server asked clients to slow down and said for how long.
    #[error("the server is throttling this mailbox: {text}")]
    Throttled {
        /// Server text.
        text: String,
        /// The wait it suggested.
        retry_after: Duration,
    },
    /// A response longer than any the session reads (it was skipped).
    #[error("the server sent a response longer than {limit} bytes{}", uid.map(|u| format!(" (the message with UID {u})")).unwrap_or_default())]
    ResponseTooLong {
        /// The message it carried, when it was a FETCH response naming its
        /// UID before the message.
        uid: Option<u32>,
        /// Whether it was a FETCH response.
        fetch: bool,
        /// The most a response may take: max_message_bytes and 64 KiB.
        limit: u32,
    },
    /// A notice, not a failure: the server lacks IDLE, so the mailbox polls.
    #[error("the server does not support IDLE; polling every {0} s instead")]
    IdleUnsupported(u64),
}

impl MailboxError {
    /// Stable code, used in the API, as a metric label and in logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "imap_connect_failed",
            Self::Timeout { .. } => "connection_timeout",
            Self::TlsCertificate(_) => "imap_tls_invalid_cert",
            Self::Tls(_) => "imap_tls_failed",
            Self::Auth(_) => "imap_auth_failed",
            Self::Folder { .. } => "imap_folder_not_found",
            Self::Bye(_) => "imap_server_bye",
            Self::ConnectionLost(_) => "imap_connection_lost",
            Self::Protocol(_) => "imap_protocol_error",
            Self::Refused { .. } => "imap_command_refused",
            Self::StarttlsUnsupported => "imap_starttls_unsupported",
            Self::IdleUnsupported(_) => "imap_idle_unsupported",
            Self::TooManyConnections(_) => "imap_too_many_connections",
            Self::OAuthRefresh(_) => "oauth_token_refresh_failed",
            Self::Throttled { .. } => "imap_throttled",
            Self::ResponseTooLong { .. } => "imap_response_too_long",
        }
    }

    /// What the operator should do.
    pub fn hint(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "check the server name and port, and that the server allows connections from this host (firewall, IP allow-list)",
            Self::Timeout { .. } => "the server answered too slowly; check the network path, or raise connection_timeout_ms",
            Self::TlsCertificate(_) => "the certificate is invalid, expired or for another name; fix it on the server, or set ca_file to the CA that signed it",
            Self::Tls(_) => "check that security matches the port (tls: 993, starttls: 143) and that the server supports TLS 1.2 or newer",
            Self::Auth(_) => "check the username and password; for Gmail and Office 365 check that IMAP is enabled for the mailbox and use an app password or OAuth 2",
            Self::Folder { .. } => "check the folder names in folders; names are case-sensitive except INBOX",
            Self::Bye(_) => "the server ended the session (maintenance or throttling); mailgate reconnects with backoff",
            Self::ConnectionLost(_) => "the connection dropped; mailgate reconnects with backoff",
            Self::Protocol(_) => "the server sent a response mailgate cannot use; report it with the server's name and version",
            Self::Refused { .. } => "the server answered NO for the reason in its text; mailgate retries with backoff (a message the server will not send, fetched alone while it still answers for the message's size, is recorded as rejected, message_refused_by_server, and the mailbox goes on)",
            Self::StarttlsUnsupported => "use security = \"tls\" with port 993, or enable STARTTLS on the server",
            Self::IdleUnsupported(_) => "enable IDLE on the server (or raise its limit on idling sessions); until then new mail arrives up to poll_interval_seconds late",
            Self::OAuthRefresh(_) => "re-authorise the mailbox to get a new refresh token, and check oauth2_client_id, the client secret and oauth2_token_url",
            Self::TooManyConnections(_) => "the server limits connections per user or address: close other clients of this mailbox, watch fewer folders, or raise the server's limit",
            Self::Throttled { .. } => "the server asked for a pause; mailgate waits at least as long as it suggested before reconnecting",
            Self::ResponseTooLong { .. } => "a message larger than the server announced is recorded as rejected (message_too_large) and the mailbox goes on; for any other response this long (a server sending one huge response line), raise pipeline.max_message_bytes: a response may be that long plus 64 KiB (a huge folder's UID list is searched in windows that fit)",
        }
    }

    /// Retry, or wait for an operator.
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::Auth(_)
            | Self::TlsCertificate(_)
            | Self::StarttlsUnsupported
            | Self::OAuthRefresh(_) => Disposition::NeedsAction,
            _ => Disposition::Retry,
        }
    }

    /// The least time to wait before reconnecting, when the server said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Classifies a server's BYE (or a refused LOGIN) by its text: connection limits
    /// and throttling with a suggested wait (Exchange Online writes
    /// "Suggested Backoff Time: 1200 milliseconds") get their own codes.
    pub fn from_bye(text: &str) -> Self {
        let lower = text.to_ascii_lowercase();
        if lower.contains("maximum number of connections") || lower.contains("too many") {
            return Self::TooManyConnections(text.to_owned());
        }
        if let Some(rest) = lower.split("suggested backoff time:").nth(1) {
            let digits: String = rest
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse::<u64>() {
                let unit = rest.trim_start()[digits.len()..].trim_start();
                let retry_after = if unit.starts_with("millisecond") {
                    Duration::from_millis(n)
                } else {
                    Duration::from_secs(n)
                };
                return Self::Throttled {
                    text: text.to_owned(),
                    retry_after,
                };
            }
        }
        Self::Bye(text.to_owned())
    }

    /// The API / log view: code, message, hint.
    pub fn report(&self) -> ErrorReport {
        ErrorReport {
            code: self.code(),
            message: self.to_string(),
            hint: self.hint(),
        }
    }
}

/// A failure as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorReport {
    /// Stable code.
    pub code: &'static str,
    /// What happened.
    pub message: String,
    /// What to do.
    pub hint: &'static str,
}

impl fmt::Display for ErrorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (hint: {})", self.code, self.message, self.hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bye_texts_are_classified() {
        let t = MailboxError::from_bye(
            "User is authenticated but not connected. Suggested Backoff Time: 1200 milliseconds",
        );
        assert_eq!(t.code(), "imap_throttled");
        assert_eq!(t.retry_after(), Some(Duration::from_millis(1200)));
        let c = MailboxError::from_bye(
            "Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10)",
        );
        assert_eq!(c.code(), "imap_too_many_connections");
        assert_eq!(
            MailboxError::from_bye("Server shutting down.").code(),
            "imap_server_bye"
        );
        assert_eq!(c.disposition(), Disposition::Retry);
    }
}
