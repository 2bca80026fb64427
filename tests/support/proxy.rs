//! A fault-injecting TCP proxy between the gateway and Dovecot, for what a
//! real server will not do on request: drop every connection at once, or go
//! silent (accept bytes, forward none) while keeping the socket open.

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    sync::{Arc, Condvar, Mutex},
    thread,
};

#[derive(Default)]
struct State {
    stalled: bool,
    open: Vec<TcpStream>,
}

/// A running proxy to `127.0.0.1:target`.
pub struct Proxy {
    /// The port clients connect to.
    pub port: u16,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl Proxy {
    /// Starts forwarding `127.0.0.1:{port}` → `127.0.0.1:{target}`.
    pub fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let state: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let shared = state.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                {
                    let mut s = shared.0.lock().unwrap();
                    s.open.push(client.try_clone().expect("clone"));
                    s.open.push(server.try_clone().expect("clone"));
                }
                for (from, to) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    ),
                    (server, client),
                ] {
                    let st = shared.clone();
                    thread::spawn(move || pump(from, to, &st));
                }
            }
        });
        Self { port, state }
    }

    /// While stalled, bytes are read but not passed on, in both directions.
    pub fn stall(&self, on: bool) {
        self.state.0.lock().unwrap().stalled = on;
        self.state.1.notify_all();
    }

    /// Closes every connection made so far (new ones still go through).
    pub fn drop_all(&self) {
        for s in self.state.0.lock().unwrap().open.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, state: &(Mutex<State>, Condvar)) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Hold the bytes while stalled: the event awaited is the unstall.
        let guard = state.0.lock().unwrap();
        drop(state.1.wait_while(guard, |s| s.stalled).unwrap());
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}
