//! Event loads against a NATS set up as production runs it: TLS verified against a CA of the
//! operator's, mutual TLS, a user and password, a token, an NKey; several seed servers. Each
//! test starts its own `nats-server` with a config file on a port of its own. A wrong CA, an
//! expired certificate, a wrong password, token or NKey is a clear, fatal error that says
//! what to check and never prints the secret.

use std::path::Path;

use pipeline_core::TaskSpec;
use pipeline_core::testing::{Nats, NatsConfig, TaskStatus};
use pipeline_example::events::proto::OrderPlaced;
use pipeline_example::events::publish_demo_orders;
use pipeline_tests::nats_server::{Certs, NatsServer, free_port};
use pipeline_tests::{Sandbox, run_task};

/// The server side of TLS, as a `nats-server` config block.
fn tls_block(cert: &Path, key: &Path, ca: Option<&Path>) -> String {
    let mut block = format!(
        "tls {{\n cert_file: {:?}\n key_file: {:?}\n timeout: 2\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    if let Some(ca) = ca {
        block.push_str(&format!(
            " ca_file: {:?}\n verify: true\n",
            ca.display().to_string()
        ));
    }
    block.push_str("}\n");
    block
}

/// The config of a TLS server's URL (with `credentials`), verified against the tests' CA.
fn verified(server: &NatsServer, credentials: &str, certs: &Certs) -> NatsConfig {
    let mut config = NatsConfig::new(server.url("tls", credentials), "the test");
    config.ca = Some(certs.ca.clone());
    config
}

async fn connect_error(config: &NatsConfig) -> String {
    let error = Nats::connect(config).await.expect_err("refused");
    format!("{error:#}")
}

#[tokio::test]
async fn a_load_reads_over_tls_verified_against_the_operators_ca_with_a_user_and_password() {
    let sandbox = Sandbox::new("nats-tls");
    let certs = Certs::generate(&sandbox.dir);
    let server = NatsServer::start(
        &sandbox.dir,
        "tls",
        &format!(
            "{}authorization {{ users = [ {{ user: etl, password: \"s3cret-bus-pass\" }} ] }}",
            tls_block(&certs.server_cert, &certs.server_key, None)
        ),
    );
    let nats = verified(&server, "etl:s3cret-bus-pass@", &certs);
    let bus = Nats::connect(&nats).await.expect("connected over TLS");
    publish_demo_orders(&bus, "ORDERS", "orders.placed", 25)
        .await
        .expect("published");

    let warehouse = format!(
        "sqlite://{}?mode=rwc",
        sandbox.path("warehouse.db").display()
    );
    let mut config = sandbox.config(&[("warehouse", &warehouse)]);
    config.nats = Some(nats.clone());
    let spec = TaskSpec::new("load_order_events", |ctx| {
        Box::pin(async move {
            ctx.load_events::<OrderPlaced>("ORDERS", "orders.placed")
                .into_table("order_events")
                .run()
                .await?;
            Ok(())
        })
    });
    let report = run_task(&config, spec, false).await;
    assert_eq!(report.status, TaskStatus::Succeeded, "{:?}", report.error);
    assert!(
        report.details.iter().any(|d| d.contains("25 events")),
        "{:?}",
        report.details
    );

    // Plain text to a server that requires TLS, a wrong password, a CA that did not sign
    // the server's certificate: each refused, naming what to check, the password hidden.
    let wrong_password = verified(&server, "etl:not-the-pass@", &certs);
    let message = connect_error(&wrong_password).await;
    assert!(
        message.contains("refused the connection") && message.contains("user and password"),
        "{message}"
    );
    assert!(!message.contains("not-the-pass"), "{message}");

    let mut wrong_ca = nats.clone();
    wrong_ca.ca = Some(certs.other_ca.clone());
    let message = connect_error(&wrong_ca).await;
    assert!(
        message.contains("TLS handshake") && message.contains("PIPELINE_NATS_CA"),
        "{message}"
    );
    assert!(!message.contains("s3cret-bus-pass"), "{message}");
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate_and_an_expired_server_certificate_is_refused() {
    let sandbox = Sandbox::new("nats-mtls");
    let certs = Certs::generate(&sandbox.dir);
    let server = NatsServer::start(
        &sandbox.dir,
        "mtls",
        &tls_block(&certs.server_cert, &certs.server_key, Some(&certs.ca)),
    );
    let mut with_cert = verified(&server, "", &certs);
    with_cert.cert = Some(certs.client_cert.clone());
    with_cert.key = Some(certs.client_key.clone());
    let nats = Nats::connect(&with_cert).await.expect("mutual TLS");
    nats.jetstream("INFO", &serde_json::json!({}))
        .await
        .expect("JetStream answers over mutual TLS");

    let mut without_cert = with_cert.clone();
    without_cert.cert = None;
    without_cert.key = None;
    assert!(
        Nats::connect(&without_cert).await.is_err(),
        "a server that verifies clients refuses one without a certificate"
    );

    let expired = NatsServer::start(
        &sandbox.dir,
        "expired",
        &tls_block(&certs.expired_cert, &certs.expired_key, None),
    );
    let message = connect_error(&verified(&expired, "", &certs)).await;
    assert!(
        message.contains("TLS handshake") && message.to_lowercase().contains("expired"),
        "{message}"
    );
}

#[tokio::test]
async fn a_token_or_an_nkey_authenticates_and_a_wrong_one_is_refused_without_showing_it() {
    let sandbox = Sandbox::new("nats-auth");
    let token = "tok-3f9a8b7c6d5e4f";
    let by_token = NatsServer::start(
        &sandbox.dir,
        "token",
        &format!("authorization {{ token: \"{token}\" }}"),
    );
    let mut config = NatsConfig::new(by_token.url("nats", ""), "the test");
    config.token = Some(pipeline_core::testing::Secret::new(token));
    Nats::connect(&config).await.expect("the token is accepted");
    let wrong = "tok-wrong-000000000";
    config.token = Some(pipeline_core::testing::Secret::new(wrong));
    let message = connect_error(&config).await;
    assert!(
        message.contains("refused the connection") && message.contains("PIPELINE_NATS_TOKEN"),
        "{message}"
    );
    assert!(!message.contains(wrong), "{message}");

    let user = nkeys::KeyPair::new_user();
    let by_nkey = NatsServer::start(
        &sandbox.dir,
        "nkey",
        &format!(
            "authorization {{ users = [ {{ nkey: {} }} ] }}",
            user.public_key()
        ),
    );
    let seed = user.seed().expect("a seed");
    let mut config = NatsConfig::new(by_nkey.url("nats", ""), "the test");
    config.nkey_seed = Some(pipeline_core::testing::Secret::new(seed.clone()));
    Nats::connect(&config).await.expect("the NKey is accepted");
    let other = nkeys::KeyPair::new_user().seed().expect("a seed");
    config.nkey_seed = Some(pipeline_core::testing::Secret::new(other.clone()));
    let message = connect_error(&config).await;
    assert!(
        message.contains("refused the connection") && message.contains("NKey"),
        "{message}"
    );
    assert!(
        !message.contains(&other) && !message.contains(&seed),
        "{message}"
    );

    // A seed that is not one is named as such before any connection.
    config.nkey_seed = Some(pipeline_core::testing::Secret::new("SUnot-a-seed-at-all"));
    let message = connect_error(&config).await;
    assert!(message.contains("is not a user seed"), "{message}");
    assert!(!message.contains("SUnot-a-seed-at-all"), "{message}");
}

#[tokio::test]
async fn the_first_seed_server_that_answers_serves_the_load() {
    let sandbox = Sandbox::new("nats-seeds");
    let server = NatsServer::start(&sandbox.dir, "seed", "");
    let nowhere = free_port();
    let config = NatsConfig::new(
        format!("nats://127.0.0.1:{nowhere}, {}", server.url("nats", "")),
        "the test",
    );
    let nats = Nats::connect(&config)
        .await
        .expect("the second seed answers");
    publish_demo_orders(&nats, "ORDERS", "orders.placed", 3)
        .await
        .expect("published through the second seed");

    let none = NatsConfig::new(format!("nats://127.0.0.1:{nowhere}"), "the test");
    let message = connect_error(&none).await;
    assert!(
        message.contains(&format!(
            "cannot connect to NATS at nats://127.0.0.1:{nowhere}"
        )),
        "{message}"
    );
}

#[tokio::test]
async fn a_creds_file_authenticates_a_user_of_an_account_and_a_wrong_one_is_refused() {
    let sandbox = Sandbox::new("nats-creds");
    let accounts = pipeline_tests::nats_server::Accounts::generate();
    let server = NatsServer::start(&sandbox.dir, "accounts", &accounts.server_config);
    sandbox.write("etl.creds", &accounts.creds);
    let mut config = NatsConfig::new(server.url("nats", ""), "the test");
    config.creds = Some(sandbox.path("etl.creds"));
    let nats = Nats::connect(&config)
        .await
        .expect("the creds are accepted");
    publish_demo_orders(&nats, "ORDERS", "orders.placed", 5)
        .await
        .expect("JetStream of the account stores the events");

    // A user of an account the server does not know.
    let stranger = pipeline_tests::nats_server::Accounts::generate();
    sandbox.write("stranger.creds", &stranger.creds);
    config.creds = Some(sandbox.path("stranger.creds"));
    let message = connect_error(&config).await;
    assert!(
        message.contains("refused the connection") && message.contains("PIPELINE_NATS_CREDS"),
        "{message}"
    );
    for secret in [&stranger.user_jwt, &stranger.user_seed] {
        assert!(!message.contains(secret.as_str()), "{message}");
        assert_eq!(
            pipeline_core::testing::redact(&format!("x {secret} y")),
            "x *** y"
        );
    }

    sandbox.write("garbage.creds", "not a creds file\n");
    config.creds = Some(sandbox.path("garbage.creds"));
    let message = connect_error(&config).await;
    assert!(
        message.contains("holds no user JWT and NKey seed"),
        "{message}"
    );
    config.creds = Some(sandbox.path("missing.creds"));
    let message = connect_error(&config).await;
    assert!(
        message.contains("cannot read the NATS credentials file")
            && message.contains("missing.creds"),
        "{message}"
    );
}

#[tokio::test]
async fn a_load_from_a_cluster_that_loses_its_server_continues_or_fails_loudly_and_a_rerun_is_exact()
 {
    let sandbox = Sandbox::new("nats-cluster");
    let mut cluster = NatsServer::cluster(&sandbox.dir, "c");
    let seeds: Vec<String> = cluster.iter().map(|s| s.url("nats", "")).collect();
    let nats_config = NatsConfig::new(seeds.join(","), "the test");
    let nats = Nats::connect(&nats_config).await.expect("the cluster");
    // The cluster elects its JetStream leader first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let stream = serde_json::json!({
        "name": "ORDERS", "subjects": ["orders.placed"], "storage": "file", "num_replicas": 3,
    });
    while let Err(err) = nats.jetstream("STREAM.CREATE.ORDERS", &stream).await {
        assert!(
            std::time::Instant::now() < deadline,
            "no R3 stream: {err:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let events = 200_000;
    let last = publish_demo_orders(&nats, "ORDERS", "orders.placed", events)
        .await
        .expect("published");
    drop(nats);

    let warehouse = sandbox.path("warehouse.db");
    let url = format!("sqlite://{}?mode=rwc", warehouse.display());
    let mut config = sandbox.config(&[("warehouse", &url)]);
    config.nats = Some(nats_config);
    let load = || {
        TaskSpec::new("load_order_events", |ctx| {
            Box::pin(async move {
                ctx.load_events::<OrderPlaced>("ORDERS", "orders.placed")
                    .into_table("order_events")
                    .batch(1_000)
                    .run()
                    .await?;
                Ok(())
            })
        })
        // While the cluster elects new leaders, JetStream's API times out: as a nightly
        // load would be, the task is retried.
        .policy(pipeline_core::Policy {
            retries: 5,
            retry_delay: std::time::Duration::from_secs(1),
            ..Default::default()
        })
    };
    let first = tokio::spawn({
        let (config, spec) = (config.clone(), load());
        async move { run_task(&config, spec, false).await }
    });
    // The first seed, which the load is connected to, goes once rows are being written.
    while std::fs::metadata(&warehouse).map_or(0, |m| m.len()) < 1 << 20 && !first.is_finished() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let killed_mid_load = !first.is_finished();
    cluster[0].kill();
    let first = first.await.expect("the first load");
    match first.status {
        TaskStatus::Succeeded => {}
        TaskStatus::Failed => {
            let error = first.error.clone().unwrap_or_default();
            assert!(
                error.contains("NATS") || error.contains("JetStream"),
                "a failure names the bus: {error}"
            );
        }
        other => panic!("the first load ended {other:?}: {:?}", first.error),
    }
    let rerun = run_task(&config, load(), false).await;
    assert_eq!(rerun.status, TaskStatus::Succeeded, "{:?}", rerun.error);
    let counts = pipeline_tests::sqlite_rows(
        &warehouse,
        "SELECT count(*) || ' ' || count(DISTINCT _seq) || ' ' || max(_seq) FROM order_events",
    )
    .await;
    assert_eq!(
        counts,
        [format!("{events} {events} {last}")],
        "killed mid-load: {killed_mid_load}; first load: {:?} {:?}",
        first.status,
        first.error
    );
}

/// The real `daily` binary with a bus that refuses its token, NKey or creds: the load fails,
/// and the secret is in none of stderr, `--json`, the state store or the task's log.
#[test]
fn a_refused_nats_secret_shows_nowhere_the_daily_binary_writes() {
    const DAILY: &str = env!("CARGO_BIN_EXE_e2e-daily");
    let sandbox = Sandbox::new("nats-secrets");
    let server_token = "server-token-5a6b7c8d";
    let user = nkeys::KeyPair::new_user();
    let by_token = NatsServer::start(
        &sandbox.dir,
        "token",
        &format!("authorization {{ token: \"{server_token}\" }}"),
    );
    let by_nkey = NatsServer::start(
        &sandbox.dir,
        "nkey",
        &format!(
            "authorization {{ users = [ {{ nkey: {} }} ] }}",
            user.public_key()
        ),
    );
    let stranger = pipeline_tests::nats_server::Accounts::generate();
    sandbox.write("stranger.creds", &stranger.creds);
    let wrong_seed = nkeys::KeyPair::new_user().seed().expect("a seed");
    let creds_path = sandbox.path("stranger.creds").display().to_string();
    let cases: [(&str, &str, Vec<&str>, &NatsServer); 3] = [
        (
            "PIPELINE_NATS_TOKEN",
            "client-token-1f2e3d4c",
            vec!["client-token-1f2e3d4c"],
            &by_token,
        ),
        (
            "PIPELINE_NATS_NKEY_SEED",
            &wrong_seed,
            vec![wrong_seed.as_str()],
            &by_nkey,
        ),
        (
            "PIPELINE_NATS_CREDS",
            &creds_path,
            vec![stranger.user_jwt.as_str(), stranger.user_seed.as_str()],
            &by_token,
        ),
    ];
    for (variable, value, secrets, server) in cases {
        let case = Sandbox::new("nats-secret-case");
        let url = server.url("nats", "");
        let env = [("PIPELINE_NATS_URL", url.as_str()), (variable, value)];
        let output = case.run(
            DAILY,
            &[
                "run",
                "--date",
                "2026-11-26",
                "--only",
                "load_order_events",
                "--json",
            ],
            &env,
        );
        // The load is not critical: the run goes on, and the load failed once, not retried.
        assert_eq!(output.code, Some(0), "{variable}: {}", output.stderr);
        assert!(
            output.stdout.contains("refused the connection")
                && output.stdout.contains(r#""attempts": 1"#),
            "{variable}: {}",
            output.stdout
        );
        let logs = case.run(
            DAILY,
            &["logs", "load_order_events", "--date", "2026-11-26"],
            &env,
        );
        let state = std::fs::read(case.path(".pipeline/state.db")).expect("the state store");
        let state = String::from_utf8_lossy(&state);
        for secret in secrets {
            output.assert_lacks(secret);
            logs.assert_lacks(secret);
            assert!(
                !state.contains(secret),
                "{variable}: the state store holds it"
            );
        }
    }
}
