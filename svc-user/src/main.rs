#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::runtime::main::<svc_user::Config>().await
}
