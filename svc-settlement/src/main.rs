use clap::Parser;
use svc_settlement::{App, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init();
    let config = Config::parse();
    App::build(config, common::runtime::shutdown_on_signal()).await?.run_until_stopped().await
}
