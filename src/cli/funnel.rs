//! The funnel as rows, shared by `status --by` and `export --funnel`: one description of its
//! columns, so that both print the same numbers under the same names (docs/reports.md).

use serde_json::{Map, Value, json};

use disparo::receipt::{Funnel, FunnelBy};

/// How a funnel is split, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    /// One row per locale of the recipients (`locale` of the audience).
    Locale,
    /// One row per time zone of the recipients.
    Zone,
    /// One row per A/B variant (`variants:` of the campaign).
    Variant,
}

impl By {
    pub fn store(by: Option<By>) -> FunnelBy {
        match by {
            None => FunnelBy::Campaign,
            Some(By::Locale) => FunnelBy::Locale,
            Some(By::Zone) => FunnelBy::Zone,
            Some(By::Variant) => FunnelBy::Variant,
        }
    }
    fn column(self) -> &'static str {
        match self {
            By::Locale => "locale",
            By::Zone => "zone",
            By::Variant => "variant",
        }
    }
}

/// The funnel's counts and rates, in the order every format shows them.
pub const METRICS: [&str; 10] = [
    "planned",
    "sent",
    "delivered",
    "read",
    "failed",
    "undelivered",
    "bounced",
    "opted_out",
    "delivered_pct",
    "read_pct",
];

/// Columns of funnel rows split `by` (CSV and JSON: all of them).
pub fn columns(by: Option<By>) -> Vec<&'static str> {
    let mut c = vec!["campaign"];
    c.extend(by.map(By::column));
    c.extend(METRICS);
    c
}

/// The table leaves out `undelivered` (it is part of `failed`) to stay readable.
pub fn table_columns(by: Option<By>) -> Vec<&'static str> {
    columns(by)
        .into_iter()
        .filter(|c| *c != "undelivered")
        .collect()
}

/// The counts and rates of one funnel line, by [`METRICS`] name.
pub fn metrics(f: &Funnel) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in [
        ("planned", f.planned),
        ("sent", f.sent),
        ("delivered", f.delivered),
        ("read", f.read),
        ("failed", f.failed),
        ("undelivered", f.undelivered),
        ("bounced", f.bounced),
        ("opted_out", f.opted_out),
    ] {
        m.insert(k.into(), json!(v));
    }
    m.insert("delivered_pct".into(), json!(f.delivered_pct()));
    m.insert("read_pct".into(), json!(f.read_pct()));
    m
}

/// One funnel line as a row: the campaign, its group (null for recipients without a locale
/// or zone), the metrics.
pub fn row(f: &Funnel, by: Option<By>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("campaign".into(), json!(f.campaign));
    if let Some(by) = by {
        let group = f.group.as_deref().filter(|g| !g.is_empty());
        m.insert(by.column().into(), json!(group));
    }
    m.extend(metrics(f));
    m
}

/// What a table shows for a row without a locale, zone or variant.
pub const NO_GROUP: &str = "(none)";
