//! The `disparo` binary: parse, set up logging, run, exit with a documented code.

use std::process::ExitCode;

use clap::Parser;
mod cli;

use cli::{Cli, CliError, Exit, LogFormat};

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    init_logging(&cli.global);
    let exit = match cli::run(cli) {
        Ok(code) => code,
        Err(CliError::Invalid(problems)) => {
            cli::print_problems(&problems);
            Exit::Invalid
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

/// A reader that went away (`disparo ... | head`) ends the program quietly with exit 0, as
/// ripgrep does, whatever command was printing: the commands' own writers map a broken pipe to
/// success, and this catches the `println!`s (theirs and the channels') that panic on one.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info)
    }));
}
