//! `portcullis serve`: load settings, start telemetry, build the app, serve until a signal.

use std::path::Path;

use anyhow::Context;

use crate::config;
use crate::serve::App;
use crate::telemetry;

pub(super) fn run(config_file: Option<&Path>) -> anyhow::Result<()> {
    let settings = config::load(config_file)?;
    let _guard = telemetry::init(&settings.telemetry)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let app = App::build(settings).await?;
        tracing::info!(http = %app.http_addr(), grpc = %app.grpc_addr(), "listening");
        app.run(shutdown_signal()).await?;
        Ok(())
    })
}

/// Completes on Ctrl-C or SIGTERM (what Kubernetes sends before killing a pod).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
