//! Exchange rates from an external API.

use pipeline_core::prelude::*;
use serde::{Deserialize, Serialize};

use crate::demo;
use crate::tables::warehouse;

/// One exchange rate, as the API sends it; deserializing validates every row.
#[derive(Debug, Deserialize, Serialize)]
pub struct Rate {
    pub date: String,
    pub currency: String,
    pub eur_rate: f64,
}

/// Exchange rates of the day from the rates API (`DAILY_RATES_URL`; without it, a DEMO endpoint
/// this binary serves itself on 127.0.0.1, so the real HTTP path runs offline). Low priority:
/// the model converts with a rate of 1 when they are missing.
#[task(
    retries = 5,
    retry_delay = "1m",
    timeout = "5m",
    critical = false,
    writes = [warehouse::currency_rates]
)]
pub async fn load_currency(ctx: &Ctx) -> Result<()> {
    let demo_server;
    let url = match std::env::var("DAILY_RATES_URL") {
        Ok(url) => url,
        Err(_) => {
            demo_server = demo::RatesServer::start().await?;
            demo_server.url(ctx.date())
        }
    };
    ctx.load_api::<Rate>(&url)
        .rows_at("/data")
        .cursor("cursor", "/next")
        .into_table("currency_rates", &["date", "currency"])
        .run()
        .await?;
    Ok(())
}
