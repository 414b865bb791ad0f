//! `disparo send-test CAMPAIGN --to ADDRESS [--as RECIPIENT]`: one message sent now to a
//! tester, recorded as a test (src/app/send_test.rs); `--list`: the tests recorded.

use serde_json::json;

use super::output::{Rows, inert_text, say};
use super::{CliResult, Ctx, Exit};
use disparo::app::send_test::{self, Request};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The campaign: its `name:` or its file's name.
    pub campaign: String,
    /// The tester's address: a phone (E.164) or an email, as the campaign's channel sends to.
    #[arg(long, value_name = "ADDRESS", required_unless_present = "list")]
    pub to: Option<String>,
    /// Render the message of this audience recipient (its `id`); the first one the campaign
    /// keeps by default.
    #[arg(long = "as", value_name = "RECIPIENT")]
    pub as_recipient: Option<String>,
    /// List the test sends recorded for the campaign instead of sending one.
    #[arg(long, conflicts_with_all = ["to", "as_recipient"])]
    pub list: bool,
}

const COLUMNS: [&str; 8] = [
    "sent_at",
    "campaign",
    "recipient",
    "channel",
    "address",
    "outcome",
    "provider_id",
    "error",
];

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let project = ctx.project()?;
    let db = ctx.database(Some(&project));
    if args.list {
        let store = ctx.existing_store(Some(&project), disparo::store::Access::ReadOnly)?;
        let name = super::campaign_name(Some(&project), store.as_ref(), &args.campaign)?;
        let mut rows = Rows::new(&COLUMNS);
        for t in store.test_sends(Some(&name))? {
            rows.push(row(&t));
        }
        rows.show(ctx.format)?;
        return Ok(Exit::Ok);
    }
    let to = args.to.as_deref().unwrap_or_default();
    let out = send_test::send(
        &project,
        &db,
        &Request {
            campaign: &args.campaign,
            to,
            as_recipient: args.as_recipient.as_deref(),
            // `--now` only moves `today` in `where:` (a simulation); the send is immediate.
            now: ctx.now(),
        },
    )?;
    let mut rows = Rows::new(&COLUMNS);
    rows.push(row(&out.send));
    rows.show(ctx.format)?;
    if let Some(e) = &out.record_error {
        eprintln!(
            "warning: send-test: sent as shown, but not recorded: {}",
            inert_text(e)
        );
    } else if !out.recorded {
        say(
            ctx.quiet,
            "note: not recorded: there is no database yet (`disparo plan` makes one)",
        );
    }
    if out.send.outcome == "sent" {
        say(
            ctx.quiet,
            format!(
                "send-test: sent {}'s message of {} to {} through {}",
                inert_text(&out.send.recipient),
                inert_text(&out.send.campaign),
                inert_text(&out.send.address),
                inert_text(&out.send.channel)
            ),
        );
        Ok(Exit::Ok)
    } else {
        eprintln!(
            "error: send-test: the channel refused it: {}",
            inert_text(out.send.error.as_deref().unwrap_or("unknown error"))
        );
        Ok(Exit::Failed)
    }
}

fn row(t: &disparo::store::TestSend) -> serde_json::Map<String, serde_json::Value> {
    let v = json!({
        "sent_at": t.sent_at.to_string(),
        "campaign": t.campaign,
        "recipient": t.recipient,
        "channel": t.channel,
        "address": t.address,
        "outcome": t.outcome,
        "provider_id": t.provider_id,
        "error": t.error,
    });
    match v {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}
