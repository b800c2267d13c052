//! Entry point: parse the command line, load settings, run the chosen command.

use std::process::ExitCode;

/// mimalloc gives freed memory back to the system: an Argon2 hash's 19 MiB area, freed, does not
/// stay resident as it would with the system allocator (README, Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use slm_server::cli::{self, Cli, Command};
use slm_server::{Application, Environment, Settings};

/// mimalloc's options of this program: its arenas are committed as they are used, not ahead of
/// it (`ARENA_EAGER_COMMIT` 0), so a fresh server holds half the memory; and freed memory goes
/// back to the system at once (`PURGE_DELAY` 0). The Argon2 work areas of a burst of logins are
/// not freed between its hashes (the password hasher passes them on), so an immediate return
/// costs a burst nothing and an idle server keeps no area. mimalloc reads these options from the
/// environment when the process starts, before `main` runs, so a process started without them
/// starts itself again with them (once: an operator's own `MIMALLOC_*` values are kept).
fn tune_allocator() {
    const OPTIONS: [(&str, &str); 2] = [
        ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
        ("MIMALLOC_PURGE_DELAY", "0"),
    ];
    if OPTIONS
        .iter()
        .all(|(name, _)| std::env::var_os(name).is_some())
    {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut again = std::process::Command::new(exe);
    again.args(std::env::args_os().skip(1));
    for (name, value) in OPTIONS {
        if std::env::var_os(name).is_none() {
            again.env(name, value);
        }
    }
    let err = std::os::unix::process::CommandExt::exec(&mut again);
    // Only reached when the exec failed: run on with mimalloc's defaults.
    eprintln!("note: running with mimalloc's default options ({err})");
}

fn main() -> ExitCode {
    tune_allocator();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(err) => {
            eprintln!("cannot start the runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
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
