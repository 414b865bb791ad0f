//! `disparo completions SHELL` and `disparo man`: generated from the CLI definition itself,
//! so they never drift from the flags.

use std::path::PathBuf;

use clap::CommandFactory;

use super::{Cli, CliError, CliResult, Ctx, Exit, output::say};
use disparo::diag::Problem;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write one page per command (disparo.1, disparo-plan.1, ...) into this folder instead of
    /// printing disparo(1) to stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn completions(_ctx: &Ctx, args: Args) -> CliResult {
    let mut cmd = Cli::command();
    // Generated into memory first: clap_complete panics on a write error, and a closed pipe
    // (`| head`) must be a quiet exit 0 like every other command's.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "disparo", &mut script);
    let mut out = std::io::stdout().lock();
    super::output::ok_unless_broken(
        std::io::Write::write_all(&mut out, &script).and_then(|()| std::io::Write::flush(&mut out)),
    )?;
    Ok(Exit::Ok)
}

pub fn man(ctx: &Ctx, args: ManArgs) -> CliResult {
    let cmd = Cli::command();
    match args.dir {
        None => {
            let mut out = std::io::stdout().lock();
            super::output::ok_unless_broken(clap_mangen::Man::new(cmd).render(&mut out))?;
        }
        Some(dir) => {
            let dir = ctx.cwd.join(dir);
            std::fs::create_dir_all(&dir).map_err(|e| {
                CliError::from(Problem::new(format!("cannot create the folder: {e}")).in_file(&dir))
            })?;
            clap_mangen::generate_to(cmd, &dir).map_err(|e| {
                CliError::from(
                    Problem::new(format!("cannot write the man pages: {e}")).in_file(&dir),
                )
            })?;
            say(ctx.quiet, format!("wrote man pages to {}", dir.display()));
        }
    }
    Ok(Exit::Ok)
}
