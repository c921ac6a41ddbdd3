//! `mail-web`: configuration from the environment, JSON logs, serve until SIGTERM/Ctrl-C.

use mail_web::{App, Config, app::shutdown_signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    service_runtime::logging::init(&config.log_filter);
    let app = App::build(config).await?;
    app.run_until_stopped(shutdown_signal()).await
}
