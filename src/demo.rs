pub(crate) async fn run(_a: crate::cli::DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("loupe demo is not built yet")
}
