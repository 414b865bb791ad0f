//! What only PostgreSQL has: a server to be wrong about, to lose and to restart, and workers
//! on machines whose clocks disagree.

use std::sync::{Arc, Mutex};

use disparo::store::{Access, ClaimRequest, Location, Store, StoreError};
use jiff::{SignedDuration, Timestamp};

use super::support::*;
use crate::harness::pg::{self, PgCluster};

fn open(url: &str, access: Access) -> Result<Box<dyn Store>, StoreError> {
    disparo::store::open(&Location::Postgres(url.to_owned()), access)
}

fn refused(url: &str) -> StoreError {
    match open(url, Access::Write) {
        Ok(_) => panic!("{url} opened"),
        Err(e) => e,
    }
}

#[test]
fn wrong_url_is_a_clear_error() {
    let e = refused("postgres://disparo@127.0.0.1:notaport/db");
    assert!(matches!(e, StoreError::Open { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("postgres://USER:PASSWORD@HOST:PORT/DATABASE"),
        "{e}"
    );
    assert!(!e.is_retryable());
}

#[test]
fn wrong_password_is_a_clear_error_without_the_password() {
    let url = PgCluster::shared().fresh_database();
    let wrong = url.replace(pg::PASSWORD, "hunter2-wrong");
    let e = refused(&wrong);
    let text = e.to_string();
    assert!(matches!(e, StoreError::Open { .. }), "{e:?}");
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(text.contains("check the user and password"), "{text}");
    assert!(!text.contains("hunter2"), "the password is shown: {text}");
    assert!(!e.is_retryable());
}

#[test]
fn unknown_database_is_a_clear_error() {
    let url = PgCluster::shared().url_for("no_such_database");
    let e = refused(&url);
    assert!(matches!(e, StoreError::Open { .. }), "{e:?}");
    assert!(e.to_string().contains("createdb"), "{e}");
}

/// A server that is not there: a retryable error saying where it looked, at once.
#[test]
fn server_down_is_a_clear_retryable_error() {
    let cluster = PgCluster::start();
    let url = cluster.fresh_database();
    cluster.stop();
    let e = refused(&url);
    assert!(e.is_retryable(), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{}", cluster.port())),
        "{text}"
    );
    assert!(text.contains("is the server running"), "{text}");
}

/// `sslmode=require` against a server without TLS: refused, not sent in the clear.
#[test]
fn required_tls_is_never_skipped() {
    let url = PgCluster::shared()
        .fresh_database()
        .replace("sslmode=disable", "sslmode=verify-full");
    let e = refused(&url);
    let text = e.to_string();
    assert!(text.contains("TLS"), "{text}");
    assert!(!text.contains(pg::PASSWORD), "{text}");
}

/// TLS through rustls: with the server's CA given (`sslrootcert`), `verify-full` connects
/// over TLS (the server says so); without it, the certificate is refused with what to do.
#[test]
fn tls_verifies_the_server_certificate() {
    let cluster = PgCluster::start_with_tls();
    let url = cluster
        .fresh_database()
        .replace("sslmode=disable", "sslmode=verify-full");
    let untrusted = refused(&url);
    let text = untrusted.to_string();
    assert!(text.contains("certificate"), "{text}");
    assert!(text.contains("sslrootcert"), "{text}");
    let trusted = format!("{url}&sslrootcert={}", cluster.ca_cert().display());
    let s = open(&trusted, Access::Create).unwrap();
    plan(&*s, &campaign("c"), &audience(1));
    assert_eq!(claim(&*s, "w", 1).len(), 1);
    let mut client = postgres::Client::connect(&cluster.url(), postgres::NoTls).unwrap();
    let over_tls: i64 = client
        .query_one("SELECT COUNT(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.application_name = 'disparo'", &[])
        .unwrap()
        .get(0);
    assert!(over_tls >= 1, "no disparo connection over TLS");
}

/// A log subscriber for the current thread that keeps what it prints.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The server restarted between two calls: the next call reconnects and succeeds, with one
/// line saying the connection was lost and one that it is back.
#[test]
fn restart_between_calls_reconnects() {
    let cluster = PgCluster::start();
    let url = cluster.fresh_database();
    let s = open(&url, Access::Create).unwrap();
    plan(&*s, &campaign("c"), &audience(4));
    assert_eq!(claim(&*s, "w", 2).len(), 2);
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    cluster.restart();
    let got = tracing::subscriber::with_default(subscriber, || claim(&*s, "w", 10));
    assert_eq!(recipients(&got), ["r2", "r3"]);
    let text = log.text();
    let server = format!("127.0.0.1:{}", cluster.port());
    assert_eq!(
        text.matches("lost the connection to PostgreSQL at").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains(&format!("lost the connection to PostgreSQL at {server}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("reconnected to PostgreSQL at {server}")),
        "{text}"
    );
    // The gate reader reconnects too.
    s.gate().unwrap();
}

/// The server down while a worker records outcomes: the call waits for it to come back,
/// then records them once.
#[test]
fn outage_during_a_call_is_waited_out() {
    let cluster = Arc::new(PgCluster::start());
    let url = cluster.fresh_database();
    let s: Arc<dyn Store> = Arc::from(open(&url, Access::Create).unwrap());
    plan(&*s, &campaign("c"), &audience(2));
    let got = claim(&*s, "w", 2);
    cluster.stop();
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = {
        let s = s.clone();
        let done: Vec<_> = got.iter().map(|c| sent(c, t())).collect();
        std::thread::spawn(move || {
            tx.send(()).unwrap();
            s.complete("w", &done)
        })
    };
    rx.recv().unwrap();
    cluster.start_again();
    assert_eq!(worker.join().unwrap().unwrap(), 2);
    assert_eq!(count(&*s, disparo::store::State::Sent), 2);
}

/// Workers whose clocks are an hour ahead or behind agree on leases: they are judged on the
/// database's clock, the workers' clocks only measure the lease's length.
#[test]
fn skewed_worker_clocks_agree_on_leases() {
    let url = PgCluster::shared().fresh_database();
    let s = open(&url, Access::Create).unwrap();
    plan(&*s, &campaign("c"), &audience(2));
    for (owner, skew) in [
        ("ahead", SignedDuration::from_hours(1)),
        ("behind", SignedDuration::from_hours(-1)),
    ] {
        let now = Timestamp::now() + skew;
        let got = s
            .complete_and_claim(
                &[],
                &ClaimRequest {
                    owner,
                    now: t(),
                    lease_now: now,
                    lease_until: now + mins(1),
                    limit: 1,
                    campaign: None,
                    ramps: &[],
                },
            )
            .unwrap()
            .1;
        assert_eq!(got.len(), 1, "{owner}");
    }
    // A worker on the right clock takes neither over.
    let now = Timestamp::now();
    let other = open(&url, Access::Write).unwrap();
    let taken = other
        .complete_and_claim(
            &[],
            &ClaimRequest {
                owner: "right",
                now: t(),
                lease_now: now,
                lease_until: now + mins(1),
                limit: 10,
                campaign: None,
                ramps: &[],
            },
        )
        .unwrap()
        .1;
    assert!(
        taken.is_empty(),
        "a skewed worker's lease was taken over: {:?}",
        recipients(&taken)
    );
    // And sees them expire a minute from now on its own clock.
    let expiry = other.next_lease_expiry(None, &[]).unwrap().unwrap();
    assert!(
        expiry.duration_since(now + mins(1)).abs() < SignedDuration::from_secs(2),
        "{expiry}"
    );
}

/// The gate is read from async code (the dispatcher's network thread): it works there, and
/// a call that cannot move to another thread (a plan borrows its source) says so instead of
/// panicking.
#[test]
fn calls_from_inside_an_async_runtime() {
    let url = PgCluster::shared().fresh_database();
    let s = open(&url, Access::Create).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(s.gate().unwrap(), s.gate().unwrap());
        assert!(s.next_due(None, &[]).unwrap().is_none());
        let e = s
            .save_plan(&campaign("c"), &mut Plan::of(&audience(1)))
            .unwrap_err();
        assert!(e.to_string().contains("blocking thread"), "{e}");
    });
}

/// A store dropped inside an async runtime (the end of a dispatch run) closes its connections
/// without panicking: the client's goodbye blocks, which a runtime thread may not do.
#[test]
fn dropped_inside_an_async_runtime() {
    let url = PgCluster::shared().fresh_database();
    let s = open(&url, Access::Create).unwrap();
    assert!(s.next_due(None, &[]).unwrap().is_none());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async move { drop(s) });
}
