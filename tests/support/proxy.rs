//! A fault-injecting TCP proxy between the gateway and Dovecot, for what a
//! real server will not do on request: drop every connection at once, go
//! silent (accept bytes, forward none) while keeping the socket open, refuse
//! new connections, hold back the greeting, or pass bytes on slowly.

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    sync::{Arc, Condvar, Mutex},
    thread,
    time::Duration,
};

#[derive(Default)]
struct State {
    stalled: bool,
    refusing: bool,
    greeting_delay: Duration,
    /// Most bytes passed on per second (0: as fast as they come).
    throttle: usize,
    open: Vec<TcpStream>,
    /// Bumped by `drop_all`: a greeting held back ends with its connection.
    drops: u64,
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
                let (refusing, delay) = {
                    let s = shared.0.lock().unwrap();
                    (s.refusing, s.greeting_delay)
                };
                if refusing {
                    // Closed at once, before any byte: what a full or
                    // firewalled server does.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                {
                    let mut s = shared.0.lock().unwrap();
                    s.open.push(client.try_clone().expect("clone"));
                    s.open.push(server.try_clone().expect("clone"));
                }
                let st = shared.clone();
                let (c, s) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                thread::spawn(move || pump(c, s, &st, Duration::ZERO));
                let st = shared.clone();
                thread::spawn(move || pump(server, client, &st, delay));
            }
        });
        Self { port, state }
    }

    /// While stalled, bytes are read but not passed on, in both directions.
    pub fn stall(&self, on: bool) {
        self.state.0.lock().unwrap().stalled = on;
        self.state.1.notify_all();
    }

    /// While refusing, new connections are closed before any byte.
    pub fn refuse(&self, on: bool) {
        self.state.0.lock().unwrap().refusing = on;
    }

    /// Holds the server's first bytes (the greeting) of new connections this long.
    pub fn delay_greeting(&self, delay: Duration) {
        self.state.0.lock().unwrap().greeting_delay = delay;
    }

    /// Passes at most `bytes_per_second` on (0: no limit), as a slow link
    /// or a server throttling its users does.
    pub fn throttle(&self, bytes_per_second: usize) {
        self.state.0.lock().unwrap().throttle = bytes_per_second;
    }

    /// Closes every connection made so far (new ones still go through).
    pub fn drop_all(&self) {
        let mut state = self.state.0.lock().unwrap();
        state.drops += 1;
        for s in state.open.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.state.1.notify_all();
    }
}

/// A throttled link's pace: a tenth of a second per chunk, which is the
/// fault itself; `false` if the connections were dropped meanwhile.
fn link_paced(state: &(Mutex<State>, Condvar)) -> bool {
    let guard = state.0.lock().unwrap();
    let drops = guard.drops;
    let pace = Duration::from_millis(100);
    let (guard, _) = state
        .1
        .wait_timeout_while(guard, pace, |s| s.drops == drops)
        .unwrap();
    guard.drops == drops
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    state: &(Mutex<State>, Condvar),
    first_delay: Duration,
) {
    let mut buf = [0u8; 16 * 1024];
    if !first_delay.is_zero() {
        // A slow server: the greeting leaves `first_delay` late, unless the
        // connection is dropped first (the delay is the fault itself).
        let guard = state.0.lock().unwrap();
        let drops = guard.drops;
        drop(
            state
                .1
                .wait_timeout_while(guard, first_delay, |s| s.drops == drops)
                .unwrap(),
        );
    }
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Hold the bytes while stalled: the event awaited is the unstall.
        let guard = state.0.lock().unwrap();
        let throttle = state.1.wait_while(guard, |s| s.stalled).unwrap().throttle;
        // A tenth of a second's worth at a time: the link's pace.
        let step = match throttle {
            0 => n,
            rate => (rate / 10).max(1),
        };
        let mut sent = Ok(());
        for chunk in buf[..n].chunks(step) {
            if throttle > 0 && !link_paced(state) {
                break;
            }
            sent = to.write_all(chunk);
            if sent.is_err() {
                break;
            }
        }
        if sent.is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}
