//! Secrets through the real binary: passwords however they are spelled, webhook URLs and
//! routing keys in a configuration that does not parse. None may reach stderr, `--json`, the
//! state store or an alert.

use pipeline_tests::{Output, Sandbox};

const PIPELINE: &str = env!("CARGO_BIN_EXE_e2e-pipeline");

fn assert_hidden(output: &Output, secrets: &[&str]) {
    for secret in secrets {
        output.assert_lacks(secret);
    }
}

#[test]
fn passwords_with_any_character_never_show() {
    for password in ["pa/ss", "Pw/Slash_H7", "p@ss:w?rd#1", "x%2Fy%40z"] {
        let sandbox = Sandbox::new("secret_url");
        let url = format!("postgres://etl:{password}@127.0.0.1:1/dwh");
        let output = sandbox.run(
            PIPELINE,
            &["run", "--date", "2026-11-26", "--json"],
            &[("PIPELINE_STATE_URL", &url)],
        );
        assert_ne!(output.code, Some(0), "{}", output.stderr);
        assert_hidden(&output, &[password, "Slash_H7", "w?rd", "y%40z", "y@z"]);
        assert!(output.stderr.contains("etl:***@"), "{}", output.stderr);
    }
}

/// A password that is a common word (`postgres`, as the user and database are called) is
/// hidden where it is the password, and the scheme, user, database and advice stay readable.
#[test]
fn a_password_that_is_a_common_word_leaves_the_message_readable() {
    let sandbox = Sandbox::new("secret_word");
    let url = "postgres://postgres:postgres@127.0.0.1:1/postgres";
    let output = sandbox.run(
        PIPELINE,
        &["run", "--date", "2026-11-26"],
        &[("PIPELINE_STATE_URL", url)],
    );
    assert_eq!(output.code, Some(2), "{}", output.stderr);
    output.assert_stderr_has(
        "cannot connect to postgres://postgres:***@127.0.0.1:1/postgres (set by PIPELINE_STATE_URL)",
    );
    assert!(!output.stderr.contains("***://"), "{}", output.stderr);
}

#[test]
fn a_warehouse_password_stays_out_of_errors_json_and_the_state_store() {
    let sandbox = Sandbox::new("secret_task");
    let admin = pipeline_tests::postgres_admin_url();
    let host = admin
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:5432");
    let url = format!("postgres://postgres:Pw/Slash_H7@{host}/no_such_database_here");
    let output = sandbox.run(
        PIPELINE,
        &["run", "--date", "2026-11-26", "--json", "--only", "stamp"],
        &[("PIPELINE_DB_WAREHOUSE_URL", &url)],
    );
    assert_eq!(output.code, Some(1), "{}", output.stderr);
    assert_hidden(&output, &["Pw/Slash_H7", "Slash_H7"]);
    let state = std::fs::read(sandbox.path(".pipeline/state.db")).expect("the state store");
    let state = String::from_utf8_lossy(&state);
    assert!(
        !state.contains("Slash_H7"),
        "the state store holds the password"
    );
}

#[test]
fn a_configuration_that_does_not_parse_shows_no_secret() {
    let cases = [
        (
            "unclosed string",
            "[alerts]\nslack_webhook = \"https://hooks.slack.com/services/T01/B02/WEBHOOKSECRET1\n",
            "WEBHOOKSECRET1",
        ),
        (
            "unquoted value",
            "[alerts]\npagerduty_routing_key = ROUTINGKEYSECRET2\n",
            "ROUTINGKEYSECRET2",
        ),
        (
            "misspelled key",
            "[alerts]\nslak_webhook = \"https://hooks.slack.com/services/T01/B02/WEBHOOKSECRET3\"\n",
            "WEBHOOKSECRET3",
        ),
        (
            "a number where a string goes",
            "[alerts]\npagerduty_routing_key = 987654321\n",
            "987654321",
        ),
        (
            "password in a database URL",
            "[databases]\nwarehouse = \"postgres://etl:DBSECRET4@h/db\"\nreplica = 12 x\n",
            "DBSECRET4",
        ),
    ];
    for (name, toml, secret) in cases {
        let sandbox = Sandbox::new("secret_toml");
        sandbox.write("pipeline.toml", toml);
        let output = sandbox.run(PIPELINE, &["run", "--date", "2026-11-26", "--json"], &[]);
        assert_eq!(output.code, Some(2), "{name}: {}", output.stderr);
        assert_hidden(&output, &[secret]);
        assert!(
            output.stderr.contains("pipeline.toml is not valid at line"),
            "{name}: {}",
            output.stderr
        );
    }
}

#[test]
fn what_task_code_logs_is_redacted_too() {
    let sandbox = Sandbox::new("secret_log");
    let url = "postgres://etl:Pw/Slash_H7@db.invalid/dwh";
    sandbox.write(
        "log-extract",
        "connecting to postgres://etl:Pw/Slash_H7@db.invalid/dwh with Pw/Slash_H7",
    );
    let output = sandbox.run(
        PIPELINE,
        &["run", "--date", "2026-11-26", "--only", "extract"],
        &[("PIPELINE_DB_WAREHOUSE_URL", url)],
    );
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    output.assert_stderr_has("connecting to postgres://etl:***@db.invalid/dwh with ***");
    assert_hidden(&output, &["Slash_H7"]);
}
