//! `mail-cluster run …` (what `ops/run` executes) and `mail-cluster drill …`
//! (`ops/autoscale-drill`). See the `mail_cluster` crate.

use anyhow::Context;
use mail_cluster::config::{DrillSettings, RunSettings};

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let vars = service_runtime::config::Vars::from_env();
    let command = if args.is_empty() {
        String::new()
    } else {
        args.remove(0)
    };
    // One thread: children are forked from it, and PR_SET_PDEATHSIG follows the thread that
    // forked (a runtime worker thread could exit and take the children with it).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let code = match command.as_str() {
        "run" => {
            let settings = RunSettings::from_args(&args, &vars).context("ops/run")?;
            runtime.block_on(mail_cluster::cluster::run(settings))?
        }
        "drill" => {
            let settings = DrillSettings::from_args(&args, &vars).context("ops/autoscale-drill")?;
            runtime.block_on(mail_cluster::drill::run(settings))?
        }
        other => anyhow::bail!(
            "usage: mail-cluster run|drill [flags] (got {other:?}); use ops/run or ops/autoscale-drill"
        ),
    };
    std::process::exit(code);
}
