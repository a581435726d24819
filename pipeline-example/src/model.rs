//! Models and reports built in the warehouse.

use pipeline_core::prelude::*;

use crate::currency::LoadCurrency;
use crate::replica::Load;

/// Orders joined with users and restaurants, amounts converted to EUR.
#[task(requires = [Load], after = [LoadCurrency], timeout = "30m")]
pub async fn make_order_model(ctx: &Ctx) -> Result<()> {
    let _ = ctx;
    Ok(())
}

/// The management report: revenue per city and day.
#[task(requires = [MakeOrderModel])]
pub async fn make_management_report(ctx: &Ctx) -> Result<()> {
    let _ = ctx;
    Ok(())
}
