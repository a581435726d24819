//! `nats-server` processes of a test's own: a config file, a port, a JetStream store in a
//! directory of the test; killed when dropped. And the certificates a TLS test needs, made
//! with `openssl` (an expired one under `faketime`).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `nats-server` with JetStream.
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    pub port: u16,
}

impl NatsServer {
    /// Starts a server in `dir` with `config` (TLS, authorization, ...) added to its listen
    /// address and JetStream store; waits until it accepts connections.
    pub fn start(dir: &Path, name: &str, config: &str) -> NatsServer {
        let port = free_port();
        let store = dir.join(format!("{name}-store"));
        let file = dir.join(format!("{name}.conf"));
        std::fs::write(
            &file,
            format!(
                "listen: 127.0.0.1:{port}\nserver_name: {name}\njetstream {{ store_dir: {:?} }}\n{config}\n",
                store.display().to_string()
            ),
        )
        .expect("write the server's config");
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).expect("a log file"))
            .spawn()
            .expect("nats-server on the PATH (Debian's nats-server package)");
        let server = NatsServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {port}: {}",
                std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// Its URL with `scheme` (`nats` or `tls`) and `credentials` (`user:password@`, or empty).
    pub fn url(&self, scheme: &str, credentials: &str) -> String {
        format!("{scheme}://{credentials}127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// A CA, a server certificate for 127.0.0.1 it signed, a client certificate it signed, an
/// expired server certificate, and a second CA that signed nothing here.
#[derive(Debug)]
pub struct Certs {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub expired_cert: PathBuf,
    pub expired_key: PathBuf,
    pub other_ca: PathBuf,
}

impl Certs {
    pub fn generate(dir: &Path) -> Certs {
        let path = |name: &str| dir.join(name);
        let ca = |name: &str| {
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN={name}"),
                    "-keyout",
                    &format!("{name}-key.pem"),
                    "-out",
                    &format!("{name}.pem"),
                ],
                None,
            )
        };
        ca("test-ca");
        ca("other-ca");
        let extensions = path("san.ext");
        std::fs::write(&extensions, "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
            .expect("write the extensions");
        let signed = |name: &str, faked: Option<&str>| {
            openssl(
                dir,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    &format!("/CN={name}"),
                    "-keyout",
                    &format!("{name}-key.pem"),
                    "-out",
                    &format!("{name}.csr"),
                ],
                None,
            );
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "test-ca.pem",
                    "-CAkey",
                    "test-ca-key.pem",
                    "-CAcreateserial",
                    "-days",
                    "1",
                    "-extfile",
                    "san.ext",
                    "-out",
                    &format!("{name}.pem"),
                ],
                faked,
            );
        };
        signed("server", None);
        signed("client", None);
        // Issued on a day long past, valid for one day.
        signed("expired", Some("2020-01-01 00:00:00"));
        Certs {
            ca: path("test-ca.pem"),
            server_cert: path("server.pem"),
            server_key: path("server-key.pem"),
            client_cert: path("client.pem"),
            client_key: path("client-key.pem"),
            expired_cert: path("expired.pem"),
            expired_key: path("expired-key.pem"),
            other_ca: path("other-ca.pem"),
        }
    }
}

fn openssl(dir: &Path, args: &[&str], faked_time: Option<&str>) {
    let mut command = match faked_time {
        Some(time) => {
            let mut command = Command::new("faketime");
            command.arg(time).arg("openssl");
            command
        }
        None => Command::new("openssl"),
    };
    let output = command
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (and faketime) on the PATH");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
