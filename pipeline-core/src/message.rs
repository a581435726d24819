//! How an error reads when it leaves the process (stderr, `--json`, the state store, alerts):
//! its causes from the outermost in, one sentence each, never the same one twice, database
//! errors as the server said them (without the driver's prefix and the server's C source line),
//! and no secrets.

/// How the user runs this pipeline: the binary's own name as it was started (`daily`, or
/// whatever a pipeline calls its binary), for hints that name a command.
pub fn command_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::env::args_os()
            .next()
            .as_deref()
            .map(std::path::Path::new)
            .and_then(|path| path.file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "daily".to_string())
    })
}

/// A command of this pipeline, as a hint shows it: `` `daily status --date ..` ``. Formatted
/// only when shown: callers name it on paths that usually succeed.
#[derive(Clone, Copy, Debug)]
pub struct Command<'a>(pub &'a str);

impl std::fmt::Display for Command<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{} {}`", command_name(), self.0)
    }
}

/// The whole error, as one line.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = match cause.downcast_ref::<sqlx::Error>() {
            Some(sqlx) => sqlx_text(sqlx),
            None => cause.to_string(),
        };
        let text = text.trim().to_string();
        // A wrapper that repeats its source (`{0}` in its message) says nothing new.
        let repeated = parts
            .last()
            .is_some_and(|last| last == &text || last.ends_with(&format!(": {text}")));
        if !text.is_empty() && !repeated {
            parts.push(text);
        }
        if cause.is::<sqlx::Error>() {
            // Its sources are what it just said.
            break;
        }
    }
    crate::secrets::redact(&parts.join(": "))
}

/// A database error as the server put it: message, detail and hint.
fn sqlx_text(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => {
            let mut text = db.message().to_string();
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                if let Some(detail) = pg.detail() {
                    text = format!("{text} ({detail})");
                }
                if let Some(hint) = pg.hint() {
                    text = format!("{text}; hint: {hint}");
                }
            }
            text
        }
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Configuration(config) => format!("invalid configuration: {config}"),
        sqlx::Error::Protocol(why) => why.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn causes_read_once_each() {
        let inner: anyhow::Result<()> = Err(anyhow::anyhow!("no such table: x"));
        let error = inner
            .context("no such table: x")
            .context("loading `x`")
            .expect_err("an error");
        assert_eq!(error_text(&error), "loading `x`: no such table: x");
        let io = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        let error = anyhow::Error::new(io).context("cannot connect");
        assert_eq!(error_text(&error), "cannot connect: refused");
    }
}
