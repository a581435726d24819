//! Parsing of the `#[task(..)]` keys. Simple checks (unknown or duplicated keys, malformed
//! values) happen here, while the tokens are at hand, so that errors point at them.

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, LitBool, LitInt, LitStr, Path, Token, bracketed};

use crate::duration;

/// The keys `#[task]` accepts, in the order the docs list them.
pub(crate) const KEYS: &[&str] = &[
    "requires",
    "after",
    "retries",
    "retry_delay",
    "timeout",
    "critical",
    "name",
    "for_each",
    "pool",
    "priority",
    "reads",
    "writes",
];

/// The keys `#[check]` accepts.
const CHECK_KEYS: &[&str] = &["on", "severity", "blocking", "timeout", "name", "reads"];

/// What makes a task a check (`#[check(on = ..)]`).
#[derive(Default)]
pub struct CheckOptions {
    /// Tasks that require the checked task wait for the check and do not run if it fails.
    pub blocking: bool,
}

/// What the attribute said. `None` means "not given": defaults are applied by `expand`.
#[derive(Default)]
pub struct TaskAttr {
    /// Hard dependencies: must succeed before the task runs.
    pub requires: Vec<Path>,
    /// Soft dependencies: run first, whatever their outcome.
    pub after: Vec<Path>,
    pub retries: Option<u32>,
    pub retry_delay_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub critical: Option<bool>,
    pub name: Option<LitStr>,
    /// The list of keys of a task family.
    pub for_each: Option<Expr>,
    /// The resource pool whose slot the task takes while it runs.
    pub pool: Option<Path>,
    /// Takes free worker and pool slots before tasks of lower priority.
    pub priority: Option<i32>,
    /// The tables it reads (types of `tables!`).
    pub reads: Vec<Path>,
    /// The tables it writes.
    pub writes: Vec<Path>,
    /// Set for `#[check]`.
    pub check: Option<CheckOptions>,
    seen: Vec<String>,
}

impl TaskAttr {
    pub fn parse(args: TokenStream) -> syn::Result<Self> {
        let mut attr = TaskAttr::default();
        let parser = syn::meta::parser(|meta| attr.parse_key(meta));
        parser.parse2(args)?;
        Ok(attr)
    }

    /// `#[check(on = Target, severity = "warn" | "error", blocking, timeout = "..", name = "..")]`:
    /// a task that requires its target and fails when the outcome is wrong.
    pub fn parse_check(args: TokenStream) -> syn::Result<Self> {
        let mut attr = TaskAttr {
            check: Some(CheckOptions::default()),
            // A failed check alerts gently unless `severity = "error"`.
            critical: Some(false),
            ..TaskAttr::default()
        };
        let parser = syn::meta::parser(|meta| attr.parse_check_key(meta));
        parser.parse2(args)?;
        if attr.requires.is_empty() {
            return Err(syn::Error::new(
                proc_macro2::Span::call_site(),
                "a check needs the task whose outcome it checks: `#[check(on = LoadOrders)]`",
            ));
        }
        Ok(attr)
    }

    /// The key being parsed, if it is one of `keys` and was not given before.
    fn take_key(
        &mut self,
        meta: &ParseNestedMeta,
        attribute: &str,
        keys: &[&str],
    ) -> syn::Result<String> {
        let unknown = |what: &str, hint: String| {
            format!(
                "unknown key {what} in #[{attribute}]; expected one of: {}{hint}",
                keys.join(", ")
            )
        };
        let Some(ident) = meta.path.get_ident() else {
            return Err(meta.error(unknown("this path", String::new())));
        };
        let key = ident.to_string();
        if !keys.contains(&key.as_str()) {
            let hint = crate::suggest::did_you_mean(&key, keys.iter().copied());
            return Err(meta.error(unknown(&format!("`{key}`"), hint)));
        }
        if self.seen.contains(&key) {
            return Err(meta.error(format!("`{key}` is given more than once")));
        }
        self.seen.push(key.clone());
        Ok(key)
    }

    fn parse_check_key(&mut self, meta: ParseNestedMeta) -> syn::Result<()> {
        let key = self.take_key(&meta, "check", CHECK_KEYS)?;
        match key.as_str() {
            "on" => self.requires = vec![meta.value()?.parse()?],
            "severity" => {
                let lit: LitStr = meta.value()?.parse()?;
                self.critical = Some(match lit.value().as_str() {
                    "warn" => false,
                    "error" => true,
                    other => {
                        return Err(syn::Error::new(
                            lit.span(),
                            format!(
                                "`severity` is \"warn\" (a failure alerts Slack) or \"error\" (it \
                                 pages){}",
                                crate::suggest::did_you_mean(other, ["warn", "error"])
                            ),
                        ));
                    }
                });
            }
            "blocking" => {
                if let Some(check) = &mut self.check {
                    check.blocking = true;
                }
            }
            "timeout" => self.timeout_ms = Some(parse_duration(&meta)?),
            "name" => self.name = Some(meta.value()?.parse()?),
            "reads" => self.reads = parse_path_list(&meta)?,
            _ => unreachable!("every key of CHECK_KEYS is handled above"),
        }
        Ok(())
    }

    fn parse_key(&mut self, meta: ParseNestedMeta) -> syn::Result<()> {
        let key = self.take_key(&meta, "task", KEYS)?;
        match key.as_str() {
            "requires" => self.requires = parse_path_list(&meta)?,
            "after" => self.after = parse_path_list(&meta)?,
            "retries" => {
                let lit: LitInt = meta.value()?.parse()?;
                let value = lit.base10_parse::<u32>().map_err(|_| {
                    syn::Error::new(
                        lit.span(),
                        "`retries` takes a whole number, e.g. `retries = 3`",
                    )
                })?;
                self.retries = Some(value);
            }
            "retry_delay" => self.retry_delay_ms = Some(parse_duration(&meta)?),
            "timeout" => self.timeout_ms = Some(parse_duration(&meta)?),
            "critical" => {
                // `critical` alone means `critical = true`.
                let value = if meta.input.peek(Token![=]) {
                    let lit: LitBool = meta.value()?.parse().map_err(|err| {
                        syn::Error::new(err.span(), "`critical` takes `true` or `false`")
                    })?;
                    lit.value
                } else {
                    true
                };
                self.critical = Some(value);
            }
            "name" => {
                let lit: LitStr = meta.value()?.parse()?;
                self.name = Some(lit);
            }
            "for_each" => self.for_each = Some(meta.value()?.parse()?),
            "pool" => self.pool = Some(meta.value()?.parse()?),
            "priority" => self.priority = Some(parse_priority(&meta)?),
            "reads" => self.reads = parse_path_list(&meta)?,
            "writes" => self.writes = parse_path_list(&meta)?,
            _ => unreachable!("every key of KEYS is handled above"),
        }
        Ok(())
    }
}

/// `[TypeA, path::TypeB]`: the task types a task depends on, or the tables it reads or writes.
fn parse_path_list(meta: &ParseNestedMeta) -> syn::Result<Vec<Path>> {
    let input = meta.value()?;
    let content;
    bracketed!(content in input);
    let paths = Punctuated::<Path, Token![,]>::parse_terminated(&content)?;
    Ok(paths.into_iter().collect())
}

/// `priority = 10` or `priority = -5`: a whole number, higher first.
fn parse_priority(meta: &ParseNestedMeta) -> syn::Result<i32> {
    let input = meta.value()?;
    let negative = input.parse::<Option<Token![-]>>()?.is_some();
    let lit: LitInt = input.parse().map_err(|err| {
        syn::Error::new(
            err.span(),
            "`priority` takes a whole number, e.g. `priority = 10`",
        )
    })?;
    let text = if negative {
        format!("-{}", lit.base10_digits())
    } else {
        lit.base10_digits().to_string()
    };
    text.parse::<i32>().map_err(|_| {
        syn::Error::new(
            lit.span(),
            "`priority` takes a whole number between -2147483648 and 2147483647 (higher runs first)",
        )
    })
}

fn parse_duration(meta: &ParseNestedMeta) -> syn::Result<u64> {
    let lit: LitStr = meta.value()?.parse()?;
    duration::parse_millis(&lit.value()).map_err(|msg| syn::Error::new(lit.span(), msg))
}
