//! The store's side of `plan` alone: `save_plan` of N messages that are already built (no
//! audience to read, nothing to render or schedule), shaped like the bench campaign's
//! (~75-byte content, ~260-byte vars, 61 zones, ids in order). The wall time is the floor
//! under `disparo plan` with this schema, durability and machine: the planning thread runs
//! beside the writer, so a plan cannot finish sooner than this.
//!
//! ```text
//! cargo run --release --example plan_floor -- /tmp/floor.db 1000000
//! ```
//!
//! Arguments: a database path (deleted and created anew) and the number of messages
//! (default 1,000,000).
use std::time::Instant;

use disparo::store::{CampaignRecord, DispatchRules, MessageRef, PlanSource, SqliteStore, Store};

/// Messages made on the fly into reused buffers, as cheap to produce as possible.
struct Synthetic {
    n: u64,
    made: u64,
    recipient: String,
    address: String,
    content: String,
    vars: String,
}

const ZONES: [&str; 6] = [
    "America/Sao_Paulo",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Tokyo",
    "Europe/Lisbon",
    "Australia/Sydney",
];

impl PlanSource for Synthetic {
    fn next_message(&mut self) -> Option<Result<MessageRef<'_>, String>> {
        use std::fmt::Write as _;
        if self.made == self.n {
            return None;
        }
        self.made += 1;
        let i = self.made;
        self.recipient.clear();
        let _ = write!(self.recipient, "C{i:07}");
        self.address.clear();
        let _ = write!(self.address, "+5593961{i:06}");
        self.content.clear();
        let _ = write!(
            self.content,
            r#"{{"body":"Olá Patrícia! Use o cupom BF26 em Santarém: você tem {} pontos."}}"#,
            i % 10_000
        );
        self.vars.clear();
        let _ = write!(
            self.vars,
            r#"{{"coupon":"BF26","id":"C{i:07}","first_name":"Patrícia","last_name":"Brandão","phone":"+5593961{i:06}","email":"pbrandao{i}@hotmail.com","timezone":"America/Belem","locale":"pt-BR","city":"Santarém","plan":"pro","points":"{}","signup_date":"2026-02-14"}}"#,
            i % 10_000
        );
        // 61 distinct send instants, as the bench audience's zones give.
        let at = jiff::Timestamp::from_second(1_795_770_000 + (i % 61) as i64 * 1800).ok()?;
        Some(Ok(MessageRef {
            recipient: &self.recipient,
            occurrence: 0,
            address: &self.address,
            zone: ZONES[(i % ZONES.len() as u64) as usize],
            locale: Some("pt-BR"),
            at,
            reasons: "",
            content: &self.content,
            vars: &self.vars,
            skipped: None,
        }))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let db = args.next().ok_or("usage: plan_floor DB [MESSAGES]")?;
    let n: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{db}{suffix}"));
    }
    let store = SqliteStore::open(std::path::Path::new(&db))?;
    let record = CampaignRecord {
        name: "floor".into(),
        channel: "webhook".into(),
        rules: DispatchRules::default(),
        recurrence_start: None,
    };
    let mut source = Synthetic {
        n,
        made: 0,
        recipient: String::new(),
        address: String::new(),
        content: String::new(),
        vars: String::new(),
    };
    let t0 = Instant::now();
    let stats = store.save_plan(&record, &mut source)?;
    let el = t0.elapsed();
    println!(
        "{} messages saved in {:.2} s ({:.2} us/message, {:.0} messages/s), db {} MiB",
        stats.inserted,
        el.as_secs_f64(),
        el.as_secs_f64() * 1e6 / n as f64,
        n as f64 / el.as_secs_f64(),
        std::fs::metadata(&db)?.len() >> 20
    );
    Ok(())
}
