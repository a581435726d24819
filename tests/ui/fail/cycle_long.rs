//! A cycle longer than the search for a clear message (64 tasks): still refused, by rustc's
//! own cycle error over the tasks' rank statics.
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

#[task(requires = [Step8])]
async fn step7(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step9])]
async fn step8(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step10])]
async fn step9(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step11])]
async fn step10(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step12])]
async fn step11(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step13])]
async fn step12(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step14])]
async fn step13(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step15])]
async fn step14(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step16])]
async fn step15(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step17])]
async fn step16(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step18])]
async fn step17(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step19])]
async fn step18(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step20])]
async fn step19(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step21])]
async fn step20(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step22])]
async fn step21(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step23])]
async fn step22(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step24])]
async fn step23(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step25])]
async fn step24(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step26])]
async fn step25(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step27])]
async fn step26(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step28])]
async fn step27(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step29])]
async fn step28(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step30])]
async fn step29(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step31])]
async fn step30(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step32])]
async fn step31(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step33])]
async fn step32(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step34])]
async fn step33(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step35])]
async fn step34(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step36])]
async fn step35(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step37])]
async fn step36(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step38])]
async fn step37(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step39])]
async fn step38(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step40])]
async fn step39(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step41])]
async fn step40(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step42])]
async fn step41(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step43])]
async fn step42(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step44])]
async fn step43(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step45])]
async fn step44(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step46])]
async fn step45(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step47])]
async fn step46(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step48])]
async fn step47(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step49])]
async fn step48(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step50])]
async fn step49(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step51])]
async fn step50(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step52])]
async fn step51(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step53])]
async fn step52(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step54])]
async fn step53(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step55])]
async fn step54(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step56])]
async fn step55(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step57])]
async fn step56(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step58])]
async fn step57(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step59])]
async fn step58(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step60])]
async fn step59(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step61])]
async fn step60(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step62])]
async fn step61(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step63])]
async fn step62(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step64])]
async fn step63(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step65])]
async fn step64(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step66])]
async fn step65(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step67])]
async fn step66(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step68])]
async fn step67(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step69])]
async fn step68(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[task(requires = [Step0])]
async fn step69(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
