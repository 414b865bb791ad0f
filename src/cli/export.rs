//! `disparo export CAMPAIGN`: the delivery report a marketer hands on — one row per message
//! with its attempts summed up and what its receipts said, one row per attempt with
//! `--attempts`, or the campaign's funnel with `--funnel [--by locale|zone|variant]`.

use std::io::Write;
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::funnel::By;
use super::output::{Format, RowStream, ok_unless_broken, say};
use super::{CliResult, Ctx, Exit};
use disparo::diag::Problem;
use disparo::store::{ReportError, Store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The campaign: its `name:` or its file's name (`black-friday` for campaigns/black-friday.yaml).
    pub campaign: String,
    /// One row per delivery attempt instead of one per message.
    #[arg(long, conflicts_with = "funnel")]
    pub attempts: bool,
    /// The campaign's funnel (planned, sent, delivered, read, failed, bounced, opted out)
    /// instead of its messages: one row, or one per group with `--by`.
    #[arg(long)]
    pub funnel: bool,
    /// With `--funnel`: one row per locale, zone or A/B variant of the recipients.
    #[arg(
        long,
        value_enum,
        value_name = "locale|zone|variant",
        requires = "funnel"
    )]
    pub by: Option<By>,
    /// Write the report to this file instead of stdout. Its format is `--format` when that is
    /// json or csv, else taken from the extension (.jsonl/.json: JSON Lines, anything else: CSV).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Columns of the per-message report (CSV and table); JSON carries the same fields.
pub const MESSAGE_COLUMNS: [&str; 27] = [
    "campaign",
    "message_id",
    "recipient",
    "occurrence",
    "channel",
    "address",
    "zone",
    "locale",
    "state",
    "planned_local",
    "planned_at",
    "due_at",
    "reasons",
    "attempts",
    "first_attempt_at",
    "last_attempt_at",
    "last_outcome",
    "last_code",
    "provider_id",
    "sent_at",
    "last_error",
    "delivery",
    "delivered_at",
    "read_at",
    "delivery_code",
    "opted_out_at",
    "variant",
];

const MESSAGE_TABLE: [&str; 10] = [
    "recipient",
    "occurrence",
    "address",
    "state",
    "attempts",
    "last_outcome",
    "sent_at",
    "delivery",
    "provider_id",
    "last_error",
];

pub const ATTEMPT_COLUMNS: [&str; 12] = [
    "campaign",
    "message_id",
    "recipient",
    "occurrence",
    "address",
    "attempt",
    "started_at",
    "finished_at",
    "outcome",
    "provider_id",
    "code",
    "error",
];

const ATTEMPT_TABLE: [&str; 8] = [
    "recipient",
    "occurrence",
    "attempt",
    "finished_at",
    "outcome",
    "provider_id",
    "code",
    "error",
];

/// A serialisable row as a JSON object with its keys in `columns` order.
fn ordered(v: impl serde::Serialize, columns: &[&str]) -> Map<String, Value> {
    let Ok(Value::Object(mut m)) = serde_json::to_value(v) else {
        return Map::new();
    };
    let mut out = Map::new();
    for c in columns {
        out.insert((*c).to_owned(), m.remove(*c).unwrap_or(Value::Null));
    }
    out.extend(m);
    out
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let project = ctx.project().ok();
    let store = ctx.existing_store(project.as_ref(), disparo::store::Access::ReadOnly)?;
    let args = Args {
        campaign: super::campaign_name(project.as_ref(), store.as_ref(), &args.campaign)?,
        ..args
    };
    let (format, out): (Format, Box<dyn Write>) = match &args.output {
        None => (
            ctx.format,
            Box::new(std::io::BufWriter::new(anstream::stdout().lock())),
        ),
        Some(path) => {
            let path = ctx.cwd.join(path);
            let format = match ctx.format {
                Format::Table => match path.extension().and_then(|e| e.to_str()) {
                    Some("jsonl" | "json" | "ndjson") => Format::Json,
                    _ => Format::Csv,
                },
                f => f,
            };
            let file = std::fs::File::create(&path).map_err(|e| {
                Problem::new(format!("cannot create the report file: {e}")).in_file(&path)
            })?;
            (format, Box::new(std::io::BufWriter::new(file)))
        }
    };
    let (columns, table): (Vec<&'static str>, Vec<&'static str>) = if args.funnel {
        (
            super::funnel::columns(args.by),
            super::funnel::table_columns(args.by),
        )
    } else if args.attempts {
        (ATTEMPT_COLUMNS.to_vec(), ATTEMPT_TABLE.to_vec())
    } else {
        (MESSAGE_COLUMNS.to_vec(), MESSAGE_TABLE.to_vec())
    };
    let mut stream = RowStream::new(format, &columns, &table, out);
    let result = if args.funnel {
        funnel_rows(store.as_ref(), &args, &mut stream)
    } else if args.attempts {
        store.report_attempts(&args.campaign, &mut |r| {
            stream.push(ordered(&r, &ATTEMPT_COLUMNS))
        })
    } else {
        store.report(&args.campaign, &mut |r| {
            stream.push(ordered(&r, &MESSAGE_COLUMNS))
        })
    };
    let n = match result {
        Ok(n) => n,
        Err(ReportError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            return Ok(Exit::Ok);
        }
        Err(e) => return Err(e.into()),
    };
    ok_unless_broken(stream.finish())?;
    if let Some(path) = &args.output {
        say(
            ctx.quiet,
            format!(
                "wrote {n} {} of {} to {}",
                if args.funnel {
                    "funnel row(s)"
                } else if args.attempts {
                    "attempt(s)"
                } else {
                    "message(s)"
                },
                args.campaign,
                path.display()
            ),
        );
    }
    Ok(Exit::Ok)
}

/// `--funnel`: the store's funnel lines for the campaign, as rows; how many.
fn funnel_rows(
    store: &dyn Store,
    args: &Args,
    stream: &mut RowStream<'_>,
) -> Result<u64, ReportError> {
    let lines = store.funnel(Some(&args.campaign), By::store(args.by))?;
    for f in &lines {
        stream.push(super::funnel::row(f, args.by))?;
    }
    Ok(lines.len() as u64)
}
