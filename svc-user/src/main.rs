use clap::Parser;
use common::runtime::shutdown_on_signal;
use svc_user::{App, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init();
    let config = Config::parse();
    App::build(config, shutdown_on_signal()).await?.run_until_stopped().await
}
