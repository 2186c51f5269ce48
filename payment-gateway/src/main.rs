use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init();
    common::faults::configure_from_env()?;
    let config = payment_gateway::Config::parse();
    let stop = common::runtime::shutdown_on_signal();
    payment_gateway::App::build(config, stop).await?.run_until_stopped().await
}
