//! Entry point: parse the command line, load settings, run the chosen command.

use std::process::ExitCode;

use clap::Parser;
use slm_server::cli::{self, Cli, Command};
use slm_server::config::{Environment, Settings};
use slm_server::{Application, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };
    let default_filter = match settings.environment {
        Environment::Prod => "info,sqlx=warn",
        Environment::Local => "info,sqlx=warn,tower_http=info",
    };
    telemetry::init_tracing(settings.environment, default_filter);
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await.map(|()| true),
        Command::Migrate { realm, revert } => {
            cli::migrate(&settings, realm, revert).await.map(|()| true)
        }
        Command::CreateAdmin {
            realm,
            username,
            email,
            password_stdin,
        } => cli::create_admin(
            &settings,
            realm.into(),
            &username,
            email.as_deref(),
            password_stdin,
        )
        .await
        .map(|()| true),
        Command::ImportUsers { realm, file } => cli::import_users(&settings, realm.into(), &file)
            .await
            .map(|()| true),
        Command::Check => cli::check(&settings).await,
        Command::Healthcheck => cli::healthcheck(&settings).await,
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "slm-server listening");
    app.run_until_stopped().await
}
