//! The plan path per recipient: rendering a plain-substitution template through the pre-split
//! fast path vs Handlebars (the reference), and the whole per-recipient pipeline (CSV row →
//! zone, address, vars overlay, render, quiet-hours placement → planned row) over a generated
//! audience, with no database. Throughput is reported per recipient.

use std::hint::black_box;
use std::ops::ControlFlow;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use disparo::model::{Campaign, Project};
use disparo::plan::{PlanOptions, Planner};
use disparo::store::PlanBatch;
use disparo::template::TemplateSet;
use serde_json::json;

const TEMPLATE: &str =
    "Olá {{first_name}}! Use o cupom {{coupon}} em {{city}}: você tem {{points}} pontos.\n";
const ZONES: &[&str] = &[
    "America/Sao_Paulo",
    "America/Manaus",
    "America/New_York",
    "Europe/Lisbon",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Australia/Adelaide",
    "Asia/Kathmandu",
];
const RECIPIENTS: usize = 20_000;

fn project(dir: &Path) {
    std::fs::create_dir_all(dir.join("campaigns")).unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("disparo.yaml"),
        "timezone: America/Sao_Paulo\nchannels:\n  bench: { type: console }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("campaigns/bench.yaml"),
        "name: bench\nchannel: bench\ntemplate: bench\naudience: audience.csv\nvars: { coupon: BF26 }\nschedule:\n  at: 2026-11-27T10:00\n  timezone: America/Sao_Paulo\n  quiet_hours: { start: \"21:00\", end: \"08:00\" }\n",
    )
    .unwrap();
    std::fs::write(dir.join("templates/bench.hbs"), TEMPLATE).unwrap();
    let mut csv =
        String::from("id,first_name,last_name,phone,email,timezone,locale,city,plan,points\n");
    for i in 0..RECIPIENTS {
        csv.push_str(&format!(
            "C{i:07},Conceição,Brandão,+55119{:08},c{i}@example.com,{},pt-BR,\"São Paulo, SP\",pro,{}\n",
            i,
            ZONES[i % ZONES.len()],
            i % 10_000
        ));
    }
    std::fs::write(dir.join("audience.csv"), csv).unwrap();
}

fn render(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let fast = TemplateSet::load(&dir.path().join("templates"), "bench").unwrap();
    assert_eq!(
        fast.fast_parts(),
        1,
        "the bench template takes the fast path"
    );
    let reference = fast.reference();
    let ctx = json!({
        "coupon": "BF26", "id": "C0000001", "first_name": "Conceição", "last_name": "Brandão",
        "phone": "+5511900000001", "email": "c1@example.com", "timezone": "America/Sao_Paulo",
        "locale": "pt-BR", "city": "São Paulo, SP", "plan": "pro", "points": "943"
    });
    assert_eq!(
        fast.render(Some("pt-BR"), &ctx),
        reference.render(Some("pt-BR"), &ctx)
    );
    let mut g = c.benchmark_group("render");
    g.throughput(Throughput::Elements(1));
    g.bench_function("fast_path", |b| {
        b.iter(|| fast.render(black_box(Some("pt-BR")), black_box(&ctx)))
    });
    g.bench_function("handlebars", |b| {
        b.iter(|| reference.render(black_box(Some("pt-BR")), black_box(&ctx)))
    });
    g.finish();
}

fn plan(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let project = Project::open(dir.path(), None).unwrap();
    let now: jiff::Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
    let mut g = c.benchmark_group("plan");
    g.throughput(Throughput::Elements(RECIPIENTS as u64));
    g.sample_size(10);
    for (name, fast) in [
        ("per_recipient_fast_path", true),
        ("per_recipient_handlebars", false),
    ] {
        let campaign =
            Campaign::load(&dir.path().join("campaigns/bench.yaml"), &project.root).unwrap();
        let mut planner = Planner::prepare(&project, campaign, PlanOptions::new(now)).unwrap();
        if !fast {
            planner.templates.disable_fast_path();
        }
        g.bench_function(name, |b| {
            let mut batch = PlanBatch::default();
            b.iter(|| {
                let mut n = 0u64;
                planner
                    .run(&mut |item| {
                        batch.clear();
                        item.unwrap().pack_into(&mut batch).unwrap();
                        n += black_box(batch.len()) as u64;
                        ControlFlow::Continue(())
                    })
                    .unwrap();
                n
            })
        });
    }
    g.finish();
}

criterion_group!(benches, render, plan);
criterion_main!(benches);
