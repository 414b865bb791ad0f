//! `disparo db migrate` and `disparo db check`: for operators who run a fleet of workers
//! against one PostgreSQL database (or want to know what a SQLite file holds) and migrate
//! the schema once, on purpose, before starting new workers.

use super::output::{Rows, say};
use super::{CliResult, Ctx, Exit};

#[derive(Debug, clap::Subcommand)]
pub enum DbCmd {
    /// Bring the schema up to date (creating it if there is none); safe with workers starting
    /// at the same moment: they migrate once, under a lock.
    Migrate,
    /// Say whether this disparo can use the database as it is: exit 0 when up to date, 1 when
    /// it needs `disparo db migrate`, 4 when it was written by a newer disparo or is unreachable.
    Check,
}

pub fn run(ctx: &Ctx, cmd: DbCmd) -> CliResult {
    let project = ctx.project().ok();
    let db = ctx.database(project.as_ref());
    match cmd {
        DbCmd::Migrate => {
            let r = db.migrate()?;
            let mut rows = Rows::new(&["backend", "location", "from", "to", "applied"]);
            rows.push(crate::row! { "backend" => r.backend, "location" => r.location.clone(), "from" => r.from, "to" => r.to, "applied" => r.applied.join(" ") });
            rows.show(ctx.format)?;
            say(
                ctx.quiet,
                if r.applied.is_empty() {
                    format!("{}: schema version {}, up to date", r.location, r.to)
                } else {
                    format!(
                        "{}: schema version {} -> {} ({} migration(s))",
                        r.location,
                        r.from,
                        r.to,
                        r.applied.len()
                    )
                },
            );
            Ok(Exit::Ok)
        }
        DbCmd::Check => {
            let r = db.check()?;
            let mut rows = Rows::new(&[
                "backend",
                "location",
                "schema_version",
                "known_version",
                "state",
                "server_version",
            ]);
            rows.push(crate::row! { "backend" => r.backend, "location" => r.location.clone(), "schema_version" => r.schema_version, "known_version" => r.known_version, "state" => r.state, "server_version" => r.server_version.clone() });
            rows.show(ctx.format)?;
            Ok(match r.state {
                "up_to_date" => Exit::Ok,
                "behind" => {
                    say(
                        ctx.quiet,
                        format!(
                            "{}: schema version {}, this disparo needs {}: run `disparo db migrate`",
                            r.location, r.schema_version, r.known_version
                        ),
                    );
                    Exit::Failed
                }
                _ => {
                    eprintln!(
                        "error: {} has schema version {}, newer than this disparo knows ({})\n  hint: upgrade disparo on this machine",
                        r.location, r.schema_version, r.known_version
                    );
                    Exit::Internal
                }
            })
        }
    }
}
