//! OAuth 2 access tokens for XOAUTH2: exchanges the mailbox's refresh token
//! at the provider's token endpoint (RFC 6749 §6) before each login. One
//! small HTTP/1.0 POST over the same TLS stack as IMAP; a rejected grant
//! needs an operator, a network failure is retried like any other.

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::rustls::pki_types::ServerName;

use super::{error::MailboxError, tls};
use crate::config::{MailboxConfig, OAuth2Refresh, Secret};

/// Most bytes read from a token endpoint's answer.
const MAX_RESPONSE: u64 = 64 * 1024;

/// `application/x-www-form-urlencoded` for one value.
fn form(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// (https?, host, port, path) of an http(s) URL.
fn split_url(url: &str) -> Option<(bool, String, u16, String)> {
    let (tls, rest) = match url.split_once("://")? {
        ("https", rest) => (true, rest),
        ("http", rest) => (false, rest),
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().ok()?),
        None => (authority.to_owned(), if tls { 443 } else { 80 }),
    };
    Some((tls, host, port, path.to_owned()))
}

/// A fresh access token for `cfg`, from its refresh token (`cfg.secret`).
pub async fn access_token(cfg: &MailboxConfig, o: &OAuth2Refresh) -> Result<Secret, MailboxError> {
    let refused = |why: String| MailboxError::OAuthRefresh(why);
    let (secure, host, port, path) = split_url(&o.token_url)
        .ok_or_else(|| refused(format!("{:?} is not an http(s) URL", o.token_url)))?;
    let mut body = format!(
        "grant_type=refresh_token&refresh_token={}&client_id={}",
        form(cfg.secret.expose()),
        form(&o.client_id)
    );
    if let Some(s) = &o.client_secret {
        body.push_str(&format!("&client_secret={}", form(s.expose())));
    }
    if let Some(scope) = &o.scope {
        body.push_str(&format!("&scope={}", form(scope)));
    }
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| MailboxError::Connect {
            host: host.clone(),
            port,
            reason: format!("token endpoint: {e}"),
        })?;
    let mut answer = Vec::new();
    if secure {
        let name = ServerName::try_from(host.clone())
            .map_err(|_| MailboxError::Tls(format!("{host:?} is not a valid TLS server name")))?;
        let mut stream = tls::connector(cfg.ca_file.as_deref())?
            .connect(name, tcp)
            .await
            .map_err(tls::classify)?;
        exchange(&mut stream, &request, &mut answer).await?;
    } else {
        let mut stream = tcp;
        exchange(&mut stream, &request, &mut answer).await?;
    }
    parse_answer(&answer)
}

async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    request: &str,
    answer: &mut Vec<u8>,
) -> Result<(), MailboxError> {
    let lost = |e: std::io::Error| MailboxError::ConnectionLost(format!("token endpoint: {e}"));
    stream.write_all(request.as_bytes()).await.map_err(lost)?;
    stream.flush().await.map_err(lost)?;
    stream
        .take(MAX_RESPONSE)
        .read_to_end(answer)
        .await
        .map_err(lost)?;
    Ok(())
}

/// The access token from a token endpoint's answer, or why there is none.
fn parse_answer(answer: &[u8]) -> Result<Secret, MailboxError> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    if let (200, Some(token)) = (status, json["access_token"].as_str()) {
        return Ok(Secret::new(token.to_owned()));
    }
    if status >= 500 || status == 0 {
        return Err(MailboxError::ConnectionLost(format!(
            "token endpoint answered HTTP {status}"
        )));
    }
    let error = json["error"].as_str().unwrap_or("no error code");
    let description = json["error_description"].as_str().unwrap_or("");
    Err(MailboxError::OAuthRefresh(format!(
        "token endpoint answered HTTP {status}: {error} {description}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_forms() {
        assert_eq!(
            split_url("https://login.example.com/t/oauth2/token"),
            Some((
                true,
                "login.example.com".into(),
                443,
                "/t/oauth2/token".into()
            ))
        );
        assert_eq!(
            split_url("http://127.0.0.1:8080"),
            Some((false, "127.0.0.1".into(), 8080, "/".into()))
        );
        assert_eq!(split_url("ftp://x"), None);
        assert_eq!(form("a b/c+d"), "a%20b%2Fc%2Bd");
    }

    #[test]
    fn answers() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"access_token\":\"at-1\",\"expires_in\":3599}";
        assert_eq!(parse_answer(ok).unwrap().expose(), "at-1");
        let denied = b"HTTP/1.1 400 Bad Request\r\n\r\n{\"error\":\"invalid_grant\",\"error_description\":\"expired\"}";
        let e = parse_answer(denied).unwrap_err();
        assert_eq!(e.code(), "oauth_token_refresh_failed");
        assert!(e.to_string().contains("invalid_grant"));
        assert_eq!(
            parse_answer(b"HTTP/1.1 503 Busy\r\n\r\n")
                .unwrap_err()
                .code(),
            "imap_connection_lost"
        );
    }
}
