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

    /// Kills it (as a crashed host would go), and waits until it is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Three servers of one JetStream cluster, routed to each other, in `dir`.
    pub fn cluster(dir: &Path, name: &str) -> Vec<NatsServer> {
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let urls: Vec<String> = routes
            .iter()
            .map(|port| format!("nats-route://127.0.0.1:{port}"))
            .collect();
        routes
            .iter()
            .enumerate()
            .map(|(i, port)| {
                NatsServer::start(
                    dir,
                    &format!("{name}-{i}"),
                    &format!(
                        "cluster {{ name: {name}, listen: 127.0.0.1:{port}, routes: [{}] }}",
                        urls.join(", ")
                    ),
                )
            })
            .collect()
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

pub use crate::web::free_port;

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

/// An operator, an account with JetStream and a user of it, as `nsc` would make them: the
/// server's config (operator JWT, the account preloaded) and the user's `.creds` file.
#[derive(Debug)]
pub struct Accounts {
    /// The `nats-server` config lines of operator mode.
    pub server_config: String,
    /// The user's credentials file.
    pub creds: String,
    /// The user's JWT and seed, which no message may show.
    pub user_jwt: String,
    pub user_seed: String,
}

impl Accounts {
    pub fn generate() -> Accounts {
        let operator = nkeys::KeyPair::new_operator();
        let account = nkeys::KeyPair::new_account();
        let user = nkeys::KeyPair::new_user();
        let operator_jwt = jwt(
            &operator,
            &operator.public_key(),
            "operator",
            serde_json::json!({"type": "operator", "version": 2}),
        );
        let unlimited = -1;
        let account_jwt = jwt(
            &operator,
            &account.public_key(),
            "etl-account",
            serde_json::json!({
                "type": "account", "version": 2,
                "limits": {
                    "subs": unlimited, "data": unlimited, "payload": unlimited,
                    "imports": unlimited, "exports": unlimited, "wildcards": true,
                    "conn": unlimited, "leaf": unlimited,
                    "mem_storage": unlimited, "disk_storage": unlimited,
                    "streams": unlimited, "consumer": unlimited,
                },
                "default_permissions": {"pub": {}, "sub": {}},
            }),
        );
        // JetStream needs the server's own account.
        let system = nkeys::KeyPair::new_account();
        let system_jwt = jwt(
            &operator,
            &system.public_key(),
            "SYS",
            serde_json::json!({"type": "account", "version": 2}),
        );
        let user_jwt = jwt(
            &account,
            &user.public_key(),
            "etl",
            serde_json::json!({
                "type": "user", "version": 2, "pub": {}, "sub": {},
                "subs": unlimited, "data": unlimited, "payload": unlimited,
            }),
        );
        let user_seed = user.seed().expect("a seed");
        let creds = format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\
             NKEYs are sensitive and should be treated as secrets.\n\n\
             -----BEGIN USER NKEY SEED-----\n{user_seed}\n------END USER NKEY SEED------\n\n\
             *************************************************************\n"
        );
        let server_config = format!(
            "operator: {operator_jwt}\nsystem_account: {system}\nresolver: MEMORY\n\
             resolver_preload: {{\n {account}: {account_jwt}\n {system}: {system_jwt}\n}}\n",
            system = system.public_key(),
            account = account.public_key(),
        );
        Accounts {
            server_config,
            creds,
            user_jwt,
            user_seed,
        }
    }
}

/// A NATS JWT: its claims signed by `issuer` with its NKey (ed25519).
fn jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    use base64::Engine as _;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let issued = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = serde_json::json!({
        "jti": format!("{subject}{issued}"),
        "iat": issued,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let body = encode(claims.to_string().as_bytes());
    let signed = format!("{header}.{body}");
    let signature = issuer.sign(signed.as_bytes()).expect("signed");
    format!("{signed}.{}", encode(&signature))
}
