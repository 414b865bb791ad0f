//! The `disparo` binary: parse, set up logging, run, exit with a documented code.

use std::process::ExitCode;

use clap::Parser;
use disparo::cli::{self, Cli, CliError, Exit, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.global);
    let exit = match cli::run(cli) {
        Ok(code) => code,
        Err(CliError::Invalid(problems)) => {
            cli::print_problems(&problems);
            Exit::Invalid
        }
        Err(CliError::Failed(msg)) => {
            eprintln!("error: {msg}");
            Exit::Failed
        }
        Err(CliError::Internal(msg)) => {
            eprintln!("error: {msg}");
            Exit::Internal
        }
    };
    ExitCode::from(exit as u8)
}

fn init_logging(global: &cli::GlobalArgs) {
    let level = if global.quiet {
        "error"
    } else {
        match global.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DISPARO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("disparo={level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match global.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none(),
            )
            .without_time()
            .with_target(false)
            .init(),
    }
}
