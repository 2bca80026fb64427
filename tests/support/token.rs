//! A stand-in OAuth 2 token endpoint on loopback: it swaps one known refresh
//! token for an access token (which the test Dovecot accepts as the user's
//! passdb password) and answers `invalid_grant` to anything else.

use std::{
    io::{Read, Write},
    net::TcpListener,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    thread,
};

/// A running token endpoint.
pub struct TokenEndpoint {
    /// `http://127.0.0.1:PORT/token`.
    pub url: String,
    requests: Arc<AtomicUsize>,
    last_body: Arc<Mutex<String>>,
}

impl TokenEndpoint {
    /// Issues `access_token` for `refresh_token`, refuses every other grant.
    pub fn start(refresh_token: &str, access_token: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "http://127.0.0.1:{}/token",
            listener.local_addr().expect("addr").port()
        );
        let requests = Arc::new(AtomicUsize::new(0));
        let last_body = Arc::new(Mutex::new(String::new()));
        let (count, last) = (requests.clone(), last_body.clone());
        let (good, token) = (
            format!("refresh_token={refresh_token}&"),
            access_token.to_owned(),
        );
        thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut buf = vec![0u8; 8192];
                let mut got = 0;
                // Headers and the small form body arrive together; read until
                // the body is complete (Content-Length).
                while let Ok(n) = conn.read(&mut buf[got..]) {
                    got += n;
                    let text = String::from_utf8_lossy(&buf[..got]).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= len {
                            break;
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                let text = String::from_utf8_lossy(&buf[..got]).into_owned();
                let body = text
                    .split_once("\r\n\r\n")
                    .map(|(_, b)| b.to_owned())
                    .unwrap_or_default();
                count.fetch_add(1, Ordering::SeqCst);
                let (status, json) = if body.contains("grant_type=refresh_token")
                    && format!("{body}&").contains(&good)
                {
                    ("200 OK", format!("{{\"access_token\":\"{token}\",\"token_type\":\"Bearer\",\"expires_in\":3599}}"))
                } else {
                    ("400 Bad Request", "{\"error\":\"invalid_grant\",\"error_description\":\"refresh token expired\"}".to_owned())
                };
                *last.lock().unwrap() = body;
                let _ = write!(conn, "HTTP/1.0 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}", json.len());
            }
        });
        Self {
            url,
            requests,
            last_body,
        }
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The last form body received.
    pub fn last_body(&self) -> String {
        self.last_body.lock().unwrap().clone()
    }
}
