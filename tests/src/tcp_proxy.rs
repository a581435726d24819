//! A TCP proxy that a test takes down and brings back, as a database restart looks to its
//! clients: while down, every connection through it is cut and new ones are refused.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Forwards `127.0.0.1:port` to a target address.
#[derive(Debug)]
pub struct TcpProxy {
    pub port: u16,
    target: SocketAddr,
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    up: AtomicBool,
    /// Both ends of every connection made, to cut them.
    streams: Mutex<Vec<TcpStream>>,
}

impl TcpProxy {
    /// A proxy to `target`, up.
    pub fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let proxy = TcpProxy {
            port,
            target,
            state: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    /// Cuts every connection and refuses new ones until [`TcpProxy::up`].
    pub fn down(&self) {
        self.state.up.store(false, Ordering::SeqCst);
        // The accepting thread sees the flag within its poll and drops the listener.
        std::thread::sleep(Duration::from_millis(50));
        let mut streams = self.state.streams.lock().expect("the streams");
        for stream in streams.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Accepts connections again, on the same port.
    pub fn up(&self) {
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(listener) => break listener,
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        self.state.up.store(true, Ordering::SeqCst);
        let (state, target) = (Arc::clone(&self.state), self.target);
        std::thread::spawn(move || {
            while state.up.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let mut streams = state.streams.lock().expect("the streams");
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
                        continue;
                    };
                    std::thread::spawn(move || {
                        let mut buffer = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buffer) {
                            if n == 0 || to.write_all(&buffer[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
                streams.extend([client, server]);
            }
        });
    }
}
