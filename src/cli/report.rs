//! `disparo report CAMPAIGN --html FILE`: the campaign's funnel, sends per hour, failures by
//! code and time to read as one self-contained HTML page (`--format json`: the same data on
//! stdout). The work is `disparo::app::report`'s; this only parses and prints.

use std::path::PathBuf;

use super::output::{ok_unless_broken, say, write_json_line};
use super::{CliResult, Ctx, Exit, Format};
use disparo::app::report;
use disparo::diag::Problem;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The campaign: its `name:` or its file's name (`black-friday` for campaigns/black-friday.yaml).
    pub campaign: String,
    /// Write the page to this file (replaced whole, or left as it was if writing fails).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    match (ctx.format, &args.html) {
        (Format::Csv, _) => {
            return Err(Problem::new("the report has no CSV form")
                .field("--format")
                .hint("write the page with --html FILE, print its data with --format json, or get CSV rows from `disparo export CAMPAIGN --funnel`")
                .into());
        }
        (Format::Table, None) => {
            return Err(Problem::new("nothing to write: the report is a page")
                .field("--html")
                .hint("give --html FILE (e.g. `disparo report CAMPAIGN --html report.html`), or --format json for its data")
                .into());
        }
        _ => {}
    }
    let project = ctx.project().ok();
    let store = ctx.existing_store(project.as_ref(), disparo::store::Access::ReadOnly)?;
    let campaign = super::campaign_name(project.as_ref(), store.as_ref(), &args.campaign)?;
    let data = report::gather(store.as_ref(), &campaign, ctx.now())?;
    if let Some(path) = &args.html {
        let path = ctx.cwd.join(path);
        report::write_html(&data, &path)?;
        say(
            ctx.quiet,
            format!(
                "wrote the report of {} ({} message(s), {} sent) to {}",
                super::output::inert(&data.campaign),
                data.messages,
                data.funnel.counts.sent,
                path.display()
            ),
        );
    }
    if ctx.format == Format::Json {
        let value = serde_json::to_value(&data)
            .map_err(|e| super::CliError::Internal(format!("cannot show the report: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(super::CliError::Internal(
                "the report is not a JSON object".into(),
            ));
        };
        let mut out = anstream::stdout().lock();
        ok_unless_broken(write_json_line(&mut out, &map))?;
    }
    Ok(Exit::Ok)
}
