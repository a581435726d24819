// The longest cycle that gets the clear message: eight tasks (the search looks at eight).
use pipeline_core::prelude::*;

#[task(requires = [Step1])]
async fn step0(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step2])]
async fn step1(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step3])]
async fn step2(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step4])]
async fn step3(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step5])]
async fn step4(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step6])]
async fn step5(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step7])]
async fn step6(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step0])]
async fn step7(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
