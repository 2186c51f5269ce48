#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::runtime::main::<svc_settlement::Config>().await
}
