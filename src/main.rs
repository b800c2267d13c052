//! Entry point: parse the command line, load settings, run the chosen command.

use std::process::ExitCode;

use clap::Parser;
use slm_server::cli::{self, Cli, Command};
use slm_server::{Application, Environment, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Completions { shell } = command {
        cli::completions(shell);
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::from_env(cli.env_file.as_deref()) {
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
    slm_server::init_tracing(settings.environment, default_filter);
    let outcome = match command {
        Command::Serve => serve(settings).await.map(|()| true),
        Command::Migrate {
            realm,
            status,
            revert,
            to,
        } => cli::migrate(&settings, realm, status, revert, to)
            .await
            .map(|()| true),
        Command::CreateAdmin {
            realm,
            username,
            email,
            password_stdin,
        } => cli::create_admin(&settings, realm.into(), &username, &email, password_stdin)
            .await
            .map(|()| true),
        Command::ImportUsers { realm, file } => cli::import_users(&settings, realm.into(), &file)
            .await
            .map(|_| true),
        Command::ResealMfa { realm } => cli::reseal_mfa(&settings, realm).await.map(|()| true),
        Command::Check => cli::check(&settings).await,
        Command::Healthcheck => cli::healthcheck(&settings).await,
        Command::Completions { .. } => Ok(true),
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
    let console = slm_server::console_url(&app.state().settings);
    tracing::info!(port = app.port(), %console, "slm-server listening");
    app.run_until_stopped().await
}
