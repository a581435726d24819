//! Configuration: `pipeline.toml` in the working directory, overridden by environment variables.
//! With neither, everything runs on SQLite files under `./.pipeline/`.
//!
//! ```toml
//! [state]
//! url = "postgres://etl@warehouse-host/etl"   # or PIPELINE_STATE_URL
//!
//! [databases]
//! warehouse = "postgres://etl@warehouse-host/dwh"   # or PIPELINE_DB_WAREHOUSE_URL
//! replica = "postgres://reader@replica-host/prod"   # or PIPELINE_DB_REPLICA_URL
//!
//! [alerts]
//! slack_webhook = "https://hooks.slack.com/services/.."   # or PIPELINE_SLACK_WEBHOOK
//! pagerduty_routing_key = ".."                           # or PIPELINE_PAGERDUTY_ROUTING_KEY
//! pagerduty_url = "https://events.eu.pagerduty.com/v2/enqueue"   # or PIPELINE_PAGERDUTY_URL
//! timeout_secs = 10                                      # or PIPELINE_ALERT_TIMEOUT_SECS
//!
//! [pools]
//! replica = 4   # the size of `pool!(Replica, 2)`; or PIPELINE_POOL_REPLICA
//!
//! [nats]   # the bus of event loads
//! url = "tls://bus-1:4222,tls://bus-2:4222"   # seed servers, first that answers; or PIPELINE_NATS_URL
//! creds = "/etc/pipeline/etl.creds"   # JWT and NKey of an account user; or PIPELINE_NATS_CREDS
//! ca = "/etc/pipeline/nats-ca.pem"    # verify the servers against it; or PIPELINE_NATS_CA
//! # cert = "client.pem", key = "client-key.pem": mutual TLS; or PIPELINE_NATS_CERT, _KEY
//! # token = "..": or PIPELINE_NATS_TOKEN; nkey_seed = "SU..": or PIPELINE_NATS_NKEY_SEED;
//! # or a user and password in the URL: nats://etl:secret@bus-host:4222
//!
//! [openlineage]   # where run events go (Marquez, DataHub, ..); none by default
//! url = "http://marquez:5000"   # or PIPELINE_OPENLINEAGE_URL (OPENLINEAGE_URL)
//! endpoint = "api/v1/lineage"   # the default; or PIPELINE_OPENLINEAGE_ENDPOINT
//! namespace = "etl"             # of the jobs; default `pipeline`; or PIPELINE_OPENLINEAGE_NAMESPACE
//! api_key = ".."                # sent as a bearer token; or PIPELINE_OPENLINEAGE_API_KEY
//! # disabled = true: sends nothing; or PIPELINE_OPENLINEAGE_DISABLED (OPENLINEAGE_DISABLED)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::fatal::ResultExt as _;
use serde::Deserialize;

/// Where the embedded default keeps its files.
pub const DEFAULT_DIR: &str = ".pipeline";
const CONFIG_FILE: &str = "pipeline.toml";

/// The loaded configuration. Each URL remembers the setting it came from, for error messages.
#[derive(Clone, Debug)]
pub struct Config {
    /// The state store: run history, markers and locks.
    pub state: Setting,
    /// The databases tasks reach by name (`ctx.db("warehouse")`).
    pub databases: BTreeMap<String, Setting>,
    /// Where alerts go.
    pub alerts: AlertConfig,
    /// Sizes of resource pools that override their `pool!` declaration.
    pub pools: BTreeMap<String, usize>,
    /// The NATS servers (JetStream) that event loads read from; none by default.
    pub nats: Option<NatsConfig>,
    /// Where OpenLineage run events go; none by default.
    pub openlineage: Option<OpenLineageConfig>,
}

/// An OpenLineage HTTP endpoint, as the OpenLineage clients configure one: a base URL and the
/// endpoint's path under it.
#[derive(Clone, Debug)]
pub struct OpenLineageConfig {
    /// Where events are POSTed: the base URL joined with the endpoint's path. May hold a
    /// token: print nothing of it.
    pub(crate) events_url: Secret,
    /// The namespace of the pipeline's jobs.
    pub namespace: String,
    /// Sent as `Authorization: Bearer ..`.
    pub api_key: Option<Secret>,
}

/// The OpenLineage HTTP API's path of run events.
const OPENLINEAGE_ENDPOINT: &str = "api/v1/lineage";
/// The jobs' namespace unless configured.
const OPENLINEAGE_NAMESPACE: &str = "pipeline";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenLineageSection {
    url: Option<String>,
    endpoint: Option<String>,
    namespace: Option<String>,
    api_key: Option<String>,
    /// Sends nothing, whatever else is set (the OpenLineage clients' `OPENLINEAGE_DISABLED`).
    disabled: Option<bool>,
}

impl OpenLineageSection {
    /// Takes an environment variable's setting (`URL`, `ENDPOINT`, `NAMESPACE`, `API_KEY`:
    /// the name after its prefix); `false` for any other name.
    fn take(&mut self, key: &str, value: String) -> bool {
        if key == "DISABLED" {
            self.disabled = Some(matches!(
                value.trim().to_ascii_lowercase().as_str(),
                "true" | "1" | "yes"
            ));
            return true;
        }
        let field = match key {
            "URL" => &mut self.url,
            "ENDPOINT" => &mut self.endpoint,
            "NAMESPACE" => &mut self.namespace,
            "API_KEY" => &mut self.api_key,
            _ => return false,
        };
        *field = Some(value);
        true
    }

    /// Each setting from `self`, or from `below` where `self` has none.
    fn over(self, below: OpenLineageSection) -> OpenLineageSection {
        OpenLineageSection {
            url: self.url.or(below.url),
            endpoint: self.endpoint.or(below.endpoint),
            namespace: self.namespace.or(below.namespace),
            api_key: self.api_key.or(below.api_key),
            disabled: self.disabled.or(below.disabled),
        }
    }

    fn into_config(self) -> anyhow::Result<Option<OpenLineageConfig>> {
        if let Some(key) = &self.api_key {
            crate::secrets::register(key);
        }
        if self.disabled == Some(true) {
            return Ok(None);
        }
        let Some(url) = self.url.filter(|url| !url.trim().is_empty()) else {
            if self.endpoint.is_some() || self.api_key.is_some() {
                bail!(
                    "OpenLineage settings are given but no URL: set PIPELINE_OPENLINEAGE_URL (or \
                     [openlineage] url in {CONFIG_FILE}) to the service's base URL, e.g. \
                     http://marquez:5000"
                );
            }
            return Ok(None);
        };
        crate::secrets::register_url(&url);
        let endpoint = self.endpoint.as_deref().unwrap_or(OPENLINEAGE_ENDPOINT);
        let events_url = format!(
            "{}/{}",
            url.trim().trim_end_matches('/'),
            endpoint.trim().trim_start_matches('/')
        );
        let parsed = reqwest::Url::parse(&events_url).ok();
        if !parsed.is_some_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host()) {
            bail!(
                "the OpenLineage URL (PIPELINE_OPENLINEAGE_URL or [openlineage] url) is not an \
                 http:// or https:// URL with a host; use the service's base URL, e.g. \
                 http://marquez:5000"
            );
        }
        Ok(Some(OpenLineageConfig {
            events_url: Secret(events_url),
            namespace: self
                .namespace
                .filter(|namespace| !namespace.trim().is_empty())
                .unwrap_or_else(|| OPENLINEAGE_NAMESPACE.into()),
            api_key: self.api_key.map(Secret),
        }))
    }
}

/// The NATS bus of event loads: its servers, how they are trusted, and who the pipeline is
/// to them. One way of authentication at most: a user and password in the URL, a token, an
/// NKey seed or a credentials file.
#[derive(Clone, Debug)]
pub struct NatsConfig {
    /// One or more servers, comma-separated (`nats://` or `tls://`): the seeds a connection
    /// tries in order.
    pub url: Setting,
    /// A token the servers expect.
    pub token: Option<Secret>,
    /// An NKey seed (`SU...`): the connection signs the server's nonce with it.
    pub nkey_seed: Option<Secret>,
    /// A `.creds` file (a user's JWT and NKey seed), for servers that run with accounts.
    pub creds: Option<PathBuf>,
    /// The CA that signed the servers' certificates (PEM); the system's roots otherwise.
    pub ca: Option<PathBuf>,
    /// The client certificate (PEM) of mutual TLS, with [`NatsConfig::key`].
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key: Option<PathBuf>,
}

impl NatsConfig {
    /// Servers alone, without TLS settings or credentials beyond the URL's.
    pub fn new(url: impl Into<String>, source: impl Into<String>) -> Self {
        NatsConfig {
            url: Setting {
                url: url.into(),
                source: source.into(),
            },
            token: None,
            nkey_seed: None,
            creds: None,
            ca: None,
            cert: None,
            key: None,
        }
    }

    /// The servers as they may be shown: passwords hidden.
    pub fn redacted(&self) -> String {
        self.servers()
            .map(crate::secrets::redact_url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Each server of the URL.
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        self.url
            .url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// The ways of authentication it sets (one at most, once checked), in the order of
    /// [`NatsConfig::check`]'s message.
    pub(crate) fn authentication(&self) -> Vec<Authentication> {
        let in_url = self
            .servers()
            .any(|server| crate::secrets::url_password(server).is_some());
        [
            (
                in_url,
                "a user and password in the URL",
                "the user and password in the URL",
            ),
            (
                self.token.is_some(),
                "a token",
                "the token (PIPELINE_NATS_TOKEN)",
            ),
            (
                self.nkey_seed.is_some(),
                "an NKey seed",
                "the NKey seed (PIPELINE_NATS_NKEY_SEED)",
            ),
            (
                self.creds.is_some(),
                "a credentials file",
                "the credentials file (PIPELINE_NATS_CREDS)",
            ),
        ]
        .into_iter()
        .filter(|(set, ..)| *set)
        .map(|(_, what, check)| Authentication { what, check })
        .collect()
    }

    /// Whether anything but the servers is set: credentials or TLS files.
    fn sets_more_than_servers(&self) -> bool {
        self.token.is_some()
            || self.nkey_seed.is_some()
            || [&self.creds, &self.ca, &self.cert, &self.key]
                .iter()
                .any(|path| path.is_some())
    }

    /// Hides its URLs' passwords, its token and its NKey seed from every message from now on.
    fn register_secrets(&self) {
        for server in self.servers() {
            crate::secrets::register_url(server);
        }
        for secret in [&self.token, &self.nkey_seed].into_iter().flatten() {
            crate::secrets::register(secret.expose());
        }
    }

    /// Refuses what cannot work, naming the setting.
    fn check(&self) -> anyhow::Result<()> {
        let source = &self.url.source;
        if self.servers().next().is_none() {
            bail!("{source}: no NATS server given; use nats://host:4222");
        }
        for server in self.servers() {
            if !(server.starts_with("nats://") || server.starts_with("tls://")) {
                bail!(
                    "{source}: unsupported NATS URL {:?}; use nats://host:4222 or tls://host:4222 \
                     (several separated by commas)",
                    crate::secrets::redact_url(server)
                );
            }
        }
        let ways = self.authentication();
        if ways.len() > 1 {
            let named: Vec<&str> = ways.iter().map(|way| way.what).collect();
            bail!(
                "[nats] sets {}: a connection authenticates one way; keep one of them",
                named.join(" and ")
            );
        }
        if self.cert.is_some() != self.key.is_some() {
            bail!(
                "[nats] mutual TLS needs both a client certificate and its key \
                 (cert and key, or PIPELINE_NATS_CERT and PIPELINE_NATS_KEY)"
            );
        }
        Ok(())
    }
}

/// A way a NATS connection proves who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Authentication {
    /// What it is: "a token".
    pub what: &'static str,
    /// What to check when the server refuses it: "the token (PIPELINE_NATS_TOKEN)".
    pub check: &'static str,
}

/// Where alerts go. Low severity (non-critical failures) goes to Slack, high severity (critical
/// failures) to PagerDuty, or to Slack when no pager is configured. The log always gets both.
#[derive(Clone, Debug, Default)]
pub struct AlertConfig {
    /// A Slack incoming-webhook URL.
    pub slack_webhook: Option<Secret>,
    /// A PagerDuty Events API v2 routing key.
    pub pagerduty_routing_key: Option<Secret>,
    /// The Events API v2 endpoint; default [`PAGERDUTY_EVENTS_URL`].
    pub pagerduty_url: Option<String>,
    /// Limit of one delivery request, in seconds; default 10.
    pub timeout_secs: Option<u64>,
}

/// PagerDuty's Events API v2 endpoint.
pub(crate) const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// A value that must never be printed (a webhook URL, a routing key): `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value; it is also redacted from every log line and error from now on.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A URL and where it was set (`PIPELINE_STATE_URL`, `pipeline.toml [state] url`, default).
#[derive(Clone, Debug)]
pub struct Setting {
    /// The URL; print [`Setting::redacted`] instead.
    pub url: String,
    /// Where it was set, for error messages.
    pub source: String,
}

impl Setting {
    /// The URL with any password replaced by `***`: the only form that may be printed.
    pub fn redacted(&self) -> String {
        crate::secrets::redact_url(&self.url)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    state: Option<StateSection>,
    #[serde(default)]
    databases: BTreeMap<String, String>,
    #[serde(default)]
    alerts: Option<AlertsSection>,
    #[serde(default)]
    pools: BTreeMap<String, usize>,
    #[serde(default)]
    nats: Option<NatsSection>,
    #[serde(default)]
    openlineage: Option<OpenLineageSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NatsSection {
    url: Option<String>,
    token: Option<String>,
    nkey_seed: Option<String>,
    creds: Option<PathBuf>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsSection {
    slack_webhook: Option<String>,
    pagerduty_routing_key: Option<String>,
    pagerduty_url: Option<String>,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateSection {
    url: String,
}

impl Config {
    /// Reads `pipeline.toml` (or the file named by `PIPELINE_CONFIG`) if present, then the
    /// environment.
    pub fn load() -> anyhow::Result<Config> {
        let explicit = std::env::var_os("PIPELINE_CONFIG").map(PathBuf::from);
        let path = explicit
            .clone()
            .unwrap_or_else(|| PathBuf::from(CONFIG_FILE));
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => Some(parse_file(&path, &text)?),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => None,
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
        };
        Self::from_parts(file.unwrap_or_default(), &path, std::env::vars())
    }

    /// The embedded defaults alone: no file, no environment.
    pub fn embedded() -> Config {
        Self::from_parts(File::default(), Path::new(CONFIG_FILE), std::iter::empty())
            .unwrap_or_else(|_| unreachable!("the defaults are valid"))
    }

    fn from_parts(
        file: File,
        path: &Path,
        env: impl Iterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let in_file = |what: &str| format!("{} {what}", path.display());
        let mut state = match file.state {
            Some(section) => Setting {
                url: section.url,
                source: in_file("[state] url"),
            },
            None => Setting {
                url: format!("sqlite://{DEFAULT_DIR}/state.db"),
                source: "the default".into(),
            },
        };
        let mut databases: BTreeMap<String, Setting> = BTreeMap::new();
        databases.insert(
            "warehouse".into(),
            Setting {
                url: format!("sqlite://{DEFAULT_DIR}/warehouse.db"),
                source: "the default".into(),
            },
        );
        for (name, url) in file.databases {
            check_database_name(&name).with_context(|| in_file("[databases]"))?;
            let source = in_file(&format!("[databases] {name}"));
            databases.insert(name, Setting { url, source });
        }
        let section = file.nats.unwrap_or_default();
        let mut nats = NatsConfig {
            token: section.token.map(Secret),
            nkey_seed: section.nkey_seed.map(Secret),
            creds: section.creds,
            ca: section.ca,
            cert: section.cert,
            key: section.key,
            ..NatsConfig::new(section.url.unwrap_or_default(), in_file("[nats] url"))
        };
        let mut pools = BTreeMap::new();
        for (name, size) in file.pools {
            if size == 0 {
                bail!(
                    "{}: a pool needs at least one slot; to keep its tasks from running, \
                     do not select them",
                    in_file(&format!("[pools] {name} = 0"))
                );
            }
            pools.insert(name, size);
        }
        let env: Vec<(String, String)> = env.collect();
        // `PIPELINE_OPENLINEAGE_*` over the OpenLineage clients' own `OPENLINEAGE_*`, over
        // the file.
        let mut openlineage_env = OpenLineageSection::default();
        let mut openlineage_standard_env = OpenLineageSection::default();
        let section = file.alerts.unwrap_or_default();
        let mut alerts = AlertConfig {
            slack_webhook: section.slack_webhook.map(Secret),
            pagerduty_routing_key: section.pagerduty_routing_key.map(Secret),
            pagerduty_url: section.pagerduty_url,
            timeout_secs: section.timeout_secs,
        };
        for (key, value) in env {
            if key == "PIPELINE_SLACK_WEBHOOK" {
                alerts.slack_webhook = Some(Secret(value));
            } else if key == "PIPELINE_PAGERDUTY_ROUTING_KEY" {
                alerts.pagerduty_routing_key = Some(Secret(value));
            } else if key == "PIPELINE_PAGERDUTY_URL" {
                alerts.pagerduty_url = Some(value);
            } else if key == "PIPELINE_ALERT_TIMEOUT_SECS" {
                let secs = value.trim().parse().ok().filter(|s| *s > 0);
                alerts.timeout_secs =
                    Some(secs.with_context(|| {
                        format!("{key}={value:?}: use a whole number of seconds")
                    })?);
            } else if let Some(rest) = key.strip_prefix("PIPELINE_OPENLINEAGE_")
                && openlineage_env.take(rest, value.clone())
            {
            } else if let Some(rest) = key.strip_prefix("OPENLINEAGE_")
                && openlineage_standard_env.take(rest, value.clone())
            {
            } else if let Some(name) = key.strip_prefix("PIPELINE_POOL_") {
                let size = value.trim().parse().ok().filter(|size| *size > 0);
                let size = size.with_context(|| {
                    format!("{key}={value:?}: use a whole number of slots, at least 1")
                })?;
                pools.insert(name.to_ascii_lowercase(), size);
            } else if key == "PIPELINE_NATS_URL" {
                nats.url = Setting {
                    url: value,
                    source: key,
                };
            } else if key == "PIPELINE_NATS_TOKEN" {
                nats.token = Some(Secret(value));
            } else if key == "PIPELINE_NATS_NKEY_SEED" {
                nats.nkey_seed = Some(Secret(value));
            } else if key == "PIPELINE_NATS_CREDS" {
                nats.creds = Some(value.into());
            } else if key == "PIPELINE_NATS_CA" {
                nats.ca = Some(value.into());
            } else if key == "PIPELINE_NATS_CERT" {
                nats.cert = Some(value.into());
            } else if key == "PIPELINE_NATS_KEY" {
                nats.key = Some(value.into());
            } else if key == "PIPELINE_STATE_URL" {
                state = Setting {
                    url: value,
                    source: key,
                };
            } else if let Some(name) = key
                .strip_prefix("PIPELINE_DB_")
                .and_then(|k| k.strip_suffix("_URL"))
            {
                let name = name.to_ascii_lowercase();
                check_database_name(&name)
                    .with_context(|| format!("environment variable {key}"))?;
                databases.insert(
                    name,
                    Setting {
                        url: value,
                        source: key,
                    },
                );
            }
        }
        check_scheme(&state)?;
        // Before any refusal: a secret of a setting that is refused is still a secret.
        nats.register_secrets();
        // Settings of a bus without a server say so; none at all is no bus.
        let nats = if nats.url.url.trim().is_empty() {
            if nats.sets_more_than_servers() {
                bail!(
                    "NATS settings are given but no server: set PIPELINE_NATS_URL (or [nats] url \
                     in pipeline.toml) to nats://host:4222"
                );
            }
            None
        } else {
            nats.check()?;
            Some(nats)
        };
        for setting in databases.values() {
            check_scheme(setting)?;
        }
        // From here on, no message shows these, wherever they turn up.
        for setting in std::iter::once(&state).chain(databases.values()) {
            crate::secrets::register_url(&setting.url);
        }
        if let Some(webhook) = &alerts.slack_webhook {
            crate::secrets::register(webhook.expose());
            crate::secrets::register_url(webhook.expose());
            // The path of a webhook URL is its token.
            if let Some((_, path)) = webhook
                .expose()
                .split_once("://")
                .and_then(|(_, rest)| rest.split_once('/'))
            {
                crate::secrets::register(path);
            }
        }
        if let Some(key) = &alerts.pagerduty_routing_key {
            crate::secrets::register(key.expose());
        }
        let openlineage = openlineage_env
            .over(openlineage_standard_env)
            .over(file.openlineage.unwrap_or_default())
            .into_config()?;
        Ok(Config {
            state,
            databases,
            alerts,
            pools,
            nats,
            openlineage,
        })
    }

    /// What a named database is, stably and without credentials: `postgres://host:5432/dwh`,
    /// or the absolute path of a SQLite file. `None` when no database has that name.
    pub fn identity(&self, name: &str) -> Option<String> {
        let url = &self.databases.get(name)?.url;
        if let Some(path) = sqlite_path(url) {
            let absolute = std::path::absolute(&path).unwrap_or(path);
            return Some(format!("sqlite:{}", absolute.display()));
        }
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        // Drop the user information (the password above all) and the query string.
        let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let rest = rest.split('?').next().unwrap_or(rest);
        Some(format!("{scheme}://{rest}"))
    }

    /// The identity of every configured database, by name: worked out once per run rather
    /// than for each task that completes.
    pub fn identities(&self) -> std::collections::HashMap<String, String> {
        self.databases
            .keys()
            .filter_map(|name| Some((name.clone(), self.identity(name)?)))
            .collect()
    }

    /// The URL of a named database, or an error that says how to configure it.
    pub fn database(&self, name: &str) -> anyhow::Result<&Setting> {
        use crate::fatal::ResultExt as _;
        self.databases.get(name).with_context(|| {
            let known: Vec<&str> = self.databases.keys().map(String::as_str).collect();
            format!(
                "no database named `{name}` is configured (known: {}); add `{name} = \"postgres://..\"` \
                 under [databases] in {CONFIG_FILE} or set PIPELINE_DB_{}_URL",
                known.join(", "),
                name.to_ascii_uppercase()
            )
        })
        .fatal()
    }
}

/// The file of a `sqlite:` URL, if it names one (not `:memory:`).
pub(crate) fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

fn parse_file(path: &Path, text: &str) -> anyhow::Result<File> {
    toml::from_str(text)
        .map_err(|err| {
            // toml's own message quotes the offending line, which may hold a webhook URL, a routing
            // key or a password, whatever state the parse was in: say where, never what.
            let place = err.span().map_or(String::new(), |span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!(" at line {line}, column {column}")
            });
            anyhow::anyhow!(
                "{} is not valid{place}: {}",
                path.display(),
                crate::secrets::redact(&without_value(err.message().trim()))
            )
        })
        .fatal()
}

/// A parse error without the value it found, which may be a secret: serde says "invalid type:
/// integer `123456789`, expected a string"; this says "invalid type: an integer, expected a
/// string". Keys (`unknown field `retry``) stay: they are the file's words, not its values.
fn without_value(message: &str) -> String {
    for kind in ["invalid type: ", "invalid value: "] {
        let Some(rest) = message.strip_prefix(kind) else {
            continue;
        };
        let (found, expected) = rest.split_once(", expected").unwrap_or((rest, ""));
        let found = match found.split([' ', '`', '"']).next().unwrap_or_default() {
            "integer" => "an integer",
            "floating" => "a number with a fraction",
            "boolean" => "a boolean",
            "string" => "a string",
            "character" => "a character",
            _ if found.contains(['`', '"']) => "a value of another kind",
            _ => found,
        };
        let expected = if expected.is_empty() {
            String::new()
        } else {
            format!(", expected{expected}")
        };
        return format!("{kind}{found}{expected}");
    }
    message.to_string()
}

fn check_database_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("invalid database name {name:?}: use letters, digits and underscores");
    }
    Ok(())
}

fn check_scheme(setting: &Setting) -> anyhow::Result<()> {
    let scheme = setting.url.split_once(':').map_or("", |(scheme, _)| scheme);
    if !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
        bail!(
            "{}: unsupported database URL {:?}; use sqlite://path/to/file.db or postgres://user@host/db",
            setting.source,
            crate::secrets::redact_url(&setting.url)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str, env: &[(&str, &str)]) -> anyhow::Result<Config> {
        let file = parse_file(Path::new("pipeline.toml"), toml)?;
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::from_parts(
            file,
            Path::new("pipeline.toml"),
            env.collect::<Vec<_>>().into_iter(),
        )
    }

    use crate::secrets::{redact as redact_text, redact_query, redact_url};

    #[test]
    fn a_nats_bus_is_configured_in_the_file_and_the_environment_and_refused_when_it_cannot_work() {
        let configured = config(
            "[nats]\nurl = \"tls://bus-1:4222, tls://bus-2:4222\"\nca = \"ca.pem\"\n",
            &[
                ("PIPELINE_NATS_CREDS", "etl.creds"),
                ("PIPELINE_NATS_CERT", "client.pem"),
                ("PIPELINE_NATS_KEY", "client-key.pem"),
            ],
        )
        .expect("valid");
        let nats = configured.nats.expect("a bus");
        assert_eq!(
            nats.servers().collect::<Vec<_>>(),
            ["tls://bus-1:4222", "tls://bus-2:4222"]
        );
        assert_eq!(nats.ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(nats.creds, Some(PathBuf::from("etl.creds")));
        assert_eq!(nats.key, Some(PathBuf::from("client-key.pem")));
        assert!(config("", &[]).expect("valid").nats.is_none());

        let refused = |toml: &str, env: &[(&str, &str)]| {
            format!("{:#}", config(toml, env).expect_err("refused"))
        };
        let two_ways = refused(
            "[nats]\nurl = \"nats://etl:bus-pass-77@bus:4222\"\n",
            &[("PIPELINE_NATS_TOKEN", "token-value-1234")],
        );
        assert!(
            two_ways.contains("a user and password in the URL and a token"),
            "{two_ways}"
        );
        assert!(!two_ways.contains("bus-pass-77") && !two_ways.contains("token-value-1234"));
        // Registered before the refusal: the token hides from any later message too.
        assert_eq!(redact_text("echo token-value-1234"), "echo ***");
        let half = refused("[nats]\nurl = \"tls://bus:4222\"\ncert = \"c.pem\"\n", &[]);
        assert!(
            half.contains("needs both a client certificate and its key"),
            "{half}"
        );
        let scheme = refused("[nats]\nurl = \"nats://a:4222,http://b:4222\"\n", &[]);
        assert!(
            scheme.contains("unsupported NATS URL \"http://b:4222\""),
            "{scheme}"
        );
        let no_server = refused("", &[("PIPELINE_NATS_NKEY_SEED", "SUAAAAAAAAAAAAAAAAAAAA")]);
        assert!(no_server.contains("no server"), "{no_server}");
        assert!(!no_server.contains("SUAAAAAAAAAAAAAAAAAAAA"), "{no_server}");
    }

    #[test]
    fn openlineage_is_configured_as_its_clients_are_with_our_variables_over_theirs() {
        let file = "[openlineage]\nurl = \"http://file-host:5000/\"\nnamespace = \"from-file\"\n";
        let from_file = config(file, &[]).expect("valid");
        let settings = from_file.openlineage.expect("configured");
        assert_eq!(
            settings.events_url.expose(),
            "http://file-host:5000/api/v1/lineage"
        );
        assert_eq!(settings.namespace, "from-file");
        assert!(settings.api_key.is_none());

        let env = [
            ("OPENLINEAGE_URL", "http://standard-host:5000"),
            ("OPENLINEAGE_NAMESPACE", "standard"),
            ("PIPELINE_OPENLINEAGE_NAMESPACE", "ours"),
            ("OPENLINEAGE_ENDPOINT", "/custom/lineage"),
            ("OPENLINEAGE_API_KEY", "ol-key-123456"),
        ];
        let settings = config(file, &env).expect("valid").openlineage.expect("set");
        assert_eq!(
            settings.events_url.expose(),
            "http://standard-host:5000/custom/lineage"
        );
        assert_eq!(settings.namespace, "ours");
        assert_eq!(redact_text("key ol-key-123456"), "key ***");
        let default = config("", &[("PIPELINE_OPENLINEAGE_URL", "https://m:1")]).expect("valid");
        assert_eq!(default.openlineage.expect("set").namespace, "pipeline");
        assert!(config("", &[]).expect("valid").openlineage.is_none());
        // The clients' switch turns it off, whatever else is set; ours turns it on again.
        let off = config(file, &[("OPENLINEAGE_DISABLED", "true")]).expect("valid");
        assert!(off.openlineage.is_none());
        let on = [
            ("OPENLINEAGE_DISABLED", "true"),
            ("PIPELINE_OPENLINEAGE_DISABLED", "false"),
        ];
        assert!(config(file, &on).expect("valid").openlineage.is_some());
    }

    #[test]
    fn defaults_to_sqlite_files() {
        let config = config("", &[]).expect("valid");
        assert_eq!(config.state.url, "sqlite://.pipeline/state.db");
        assert_eq!(
            config.database("warehouse").expect("default").url,
            "sqlite://.pipeline/warehouse.db"
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let config = config(
            "[state]\nurl = \"sqlite://a.db\"\n[databases]\nreplica = \"postgres://r@h/db\"\n",
            &[
                ("PIPELINE_STATE_URL", "postgres://s@h/state"),
                ("PIPELINE_DB_REPLICA_URL", "sqlite://r.db"),
            ],
        )
        .expect("valid");
        assert_eq!(config.state.url, "postgres://s@h/state");
        assert_eq!(config.state.source, "PIPELINE_STATE_URL");
        assert_eq!(
            config.database("replica").expect("set").url,
            "sqlite://r.db"
        );
    }

    #[test]
    fn bad_configuration_is_named() {
        let err =
            config("[state]\nurl = \"mysql://u:hunter2@h/db\"\n", &[]).expect_err("bad scheme");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("pipeline.toml [state] url") && msg.contains("u:***@h"),
            "{msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");

        let err = config("[stat]\nurl = 1\n", &[]).expect_err("unknown section");
        assert!(err.to_string().contains("unknown field `stat`"), "{err}");

        let err =
            config("[state\nurl = \"postgres://u:hunter2@h/db\"", &[]).expect_err("malformed");
        assert!(!err.to_string().contains("hunter2"), "{err}");

        let err = config("", &[])
            .expect("valid")
            .database("replica")
            .map(|_| ())
            .expect_err("unknown");
        assert!(err.to_string().contains("PIPELINE_DB_REPLICA_URL"), "{err}");
    }

    #[test]
    fn pool_sizes_come_from_the_file_and_the_environment() {
        let sized = config(
            "[pools]\nreplica = 4\napi = 2\n",
            &[("PIPELINE_POOL_API", "3")],
        )
        .expect("valid");
        assert_eq!(sized.pools.get("replica"), Some(&4));
        assert_eq!(sized.pools.get("api"), Some(&3), "the environment wins");

        let err = config("[pools]\nreplica = 0\n", &[]).expect_err("an empty pool");
        assert!(
            format!("{err:#}")
                .contains("pipeline.toml [pools] replica = 0: a pool needs at least one slot"),
            "{err:#}"
        );
        let err = config("[pools]\nreplica = \"four\"\n", &[]).expect_err("not a number");
        assert!(format!("{err:#}").contains("pipeline.toml"), "{err:#}");
        assert!(!format!("{err:#}").contains("four"), "{err:#}");
        let err = config("", &[("PIPELINE_POOL_REPLICA", "-1")]).expect_err("not a size");
        assert!(
            format!("{err:#}")
                .contains("PIPELINE_POOL_REPLICA=\"-1\": use a whole number of slots"),
            "{err:#}"
        );
    }

    #[test]
    fn hides_query_strings_of_api_urls() {
        assert_eq!(
            redact_query("https://u:pw@api.example.com/v1/rates?api_key=s3cret&x=1"),
            "https://u:***@api.example.com/v1/rates?..."
        );
        assert_eq!(
            redact_query("https://api.example.com/v1/rates"),
            "https://api.example.com/v1/rates"
        );
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:p%40ss@host:5432/db"),
            "postgres://u:***@host:5432/db"
        );
        assert_eq!(redact_url("postgres://u@host/db"), "postgres://u@host/db");
        assert_eq!(
            redact_url("postgres://host/db?user=u&password=x&ssl=1"),
            "postgres://host/db?user=u&password=***&ssl=1"
        );
        assert_eq!(
            redact_url("sqlite://.pipeline/state.db"),
            "sqlite://.pipeline/state.db"
        );
        assert_eq!(
            redact_text("cannot reach \"postgres://a:b@h/d\" now"),
            "cannot reach \"postgres://a:***@h/d\" now"
        );
    }
}
