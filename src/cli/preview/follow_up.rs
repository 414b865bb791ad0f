//! A follow-up campaign's preview: for each recipient, what becomes of the follow-up of each
//! of their parent messages now (would be sent when, waiting for what, not needed why).

use std::io::Write;

use disparo::app::follow_up::{FollowUpView, Judged, Tally};

use crate::cli::output::{inert_text, paint};

/// What a follow-up's preview found, in one line.
pub(super) fn follow_up_line(f: &FollowUpView, t: &Tally) -> String {
    let parent = &f.rule.parent;
    if !f.parent_planned {
        return format!(
            "a follow-up ({}): {parent} is not in the database yet, so nobody gets it now; each recipient's message is decided once {parent} is planned and sent",
            f.rule.describe()
        );
    }
    format!(
        "a follow-up ({}): now {} due, {} waiting, {} not needed, {} done; {} recipient(s) have no message of {parent}; the times above are when each would be sent",
        f.rule.describe(),
        t.due,
        t.waiting,
        t.not_needed,
        t.done,
        t.no_parent
    )
}

/// A follow-up's verdicts for one recipient, one line per parent message.
pub(super) fn write_follow_up(out: &mut impl Write, judged: &[Judged]) -> std::io::Result<()> {
    if judged.is_empty() {
        return writeln!(
            out,
            "   {}",
            paint::p(
                paint::DIM,
                "no message of the parent campaign for this recipient: nothing to follow"
            )
        );
    }
    for j in judged {
        let occ = if j.occurrence > 0 {
            format!(" (occurrence {})", j.occurrence)
        } else {
            String::new()
        };
        let line = match (j.verdict, &j.at_local, j.at) {
            ("due", Some(local), Some(at)) => paint::p(
                paint::ACCENT,
                format!("would send {local}  {at}{occ}: {}", inert_text(&j.why)),
            ),
            ("done", _, _) => paint::p(paint::DIM, format!("done{occ}: {}", inert_text(&j.why))),
            ("waiting", _, _) => paint::p(
                paint::WARN,
                format!(
                    "waiting{occ}: {}{}",
                    inert_text(&j.why),
                    j.decided_by
                        .map(|t| format!(" (decided by {t})"))
                        .unwrap_or_default()
                ),
            ),
            ("not_needed", _, _) => paint::p(
                paint::DIM,
                format!("not needed{occ}: {}", inert_text(&j.why)),
            ),
            _ => paint::p(
                paint::WARN,
                format!("{}{occ}: {}", j.verdict, inert_text(&j.why)),
            ),
        };
        writeln!(out, "   {line}")?;
    }
    Ok(())
}
