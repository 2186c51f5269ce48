#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::runtime::main::<svc_order::Config>().await
}
