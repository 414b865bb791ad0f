//! The campaign's rules about who gets what: `where:` (which recipients the campaign is for)
//! and `variants:` (which template each gets), applied per recipient by the planner.

use jiff::tz::TimeZone;

use super::Planner;
use crate::address;
use crate::diag::Problem;
use crate::model::Recipient;

/// Which of the `arms` (name, weight) a recipient gets, by weighted rendezvous hashing: each
/// arm scores `-ln(u) / weight` with `u` a hash of the campaign, the recipient id and the
/// arm's name, and the lowest score wins. The same recipient keeps its arm across re-plans,
/// machines and versions (SHA-256 is fixed by its standard); changing one arm's weight, or
/// adding or removing an arm, moves only the recipients that must move (to or from that arm),
/// never some from one unchanged arm to another. A weight of 0 is never drawn.
pub fn variant_index(campaign: &str, recipient: &str, arms: &[(String, u64)]) -> usize {
    use sha2::Digest;
    let mut best: Option<(f64, usize)> = None;
    for (i, (name, weight)) in arms.iter().enumerate() {
        if *weight == 0 {
            continue;
        }
        let mut h = sha2::Sha256::new();
        h.update(campaign.as_bytes());
        h.update([0u8]);
        h.update(recipient.as_bytes());
        h.update([0u8]);
        h.update(name.as_bytes());
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // 53 bits, centred in their interval: u in (0, 1), never 0.
        let u = ((u64::from_be_bytes(first) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let score = -u.ln() / *weight as f64;
        if best.is_none_or(|(b, _)| score < b) {
            best = Some((score, i));
        }
    }
    best.map_or(0, |(_, i)| i)
}

impl Planner {
    /// Whether `where:` keeps the recipient, judged on its own clock (its zone, else the one
    /// its phone or the default gives); counts the clause that removed it.
    pub(super) fn kept(
        &mut self,
        r: &Recipient,
        own_zone: Option<&(String, TimeZone)>,
    ) -> Result<bool, Problem> {
        let tz = match own_zone {
            Some((_, tz)) => tz.clone(),
            None => {
                let raw = r.text_or_number(&self.settings.address_field);
                match raw.and_then(|a| address::normalize(self.address_kind, &a).ok()) {
                    Some(a) => self.default_zone(&a).1,
                    None => self.fallback_zone.1.clone(),
                }
            }
        };
        let filter = self.campaign.filter.as_ref().expect("called with a filter");
        let ctx = crate::model::filter::EvalCtx {
            now: self.opts.now,
            tz: &tz,
        };
        match filter.first_failing(&|k| r.fields.get(k), &ctx) {
            Ok(None) => Ok(true),
            Ok(Some(clause)) => {
                self.audit.filtered_out(clause, filter.clauses().len());
                Ok(false)
            }
            Err(e) => Err(Problem::new(format!("where: {}", e.message))
                .field(e.field)
                .hint(e.hint)),
        }
    }

    /// `where:` names only columns the CSV audience has (`header`): `country == BR` reads a
    /// column `BR`, and a typo would otherwise keep nobody, silently.
    pub(super) fn check_filter_fields(&self, header: &[String]) -> Result<(), Problem> {
        let Some(f) = &self.campaign.filter else {
            return Ok(());
        };
        let missing: Vec<&str> = f
            .fields()
            .into_iter()
            .filter(|k| !header.iter().any(|h| h == k))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let (l, c) = self.campaign.lines.filter;
        Err(Problem::new(format!(
            "the filter reads {}, which the audience {} has no column for",
            missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", "),
            self.campaign
                .audience
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        ))
        .in_file(&self.campaign.file)
        .at(l, c)
        .field("where")
        .hint(format!(
            "its columns are {}; quote text values: country == 'BR'",
            header.join(", ")
        )))
    }
}
