//! The test cluster itself: what the other tests rely on it for.

use std::time::{Duration, Instant};

use crate::harness::pg::{self, PgCluster};

fn connect(url: &str) -> Result<postgres::Client, postgres::Error> {
    postgres::Client::connect(url, postgres::NoTls)
}

/// Password authentication is real: the right password connects, a wrong one is refused
/// by the server (the wrong-password tests of the store rely on it).
#[test]
fn refuses_a_wrong_password() {
    let cluster = PgCluster::shared();
    let url = cluster.fresh_database();
    let mut client = connect(&url).expect("the right password connects");
    let one: i32 = client.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
    let wrong = url.replace(pg::PASSWORD, "not-the-password");
    let Err(err) = connect(&wrong) else {
        panic!("a wrong password was accepted");
    };
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::INVALID_PASSWORD),
        "{err:?}"
    );
}

/// Each test gets a database of its own: what one creates, another does not see.
#[test]
fn fresh_databases_are_apart() {
    let cluster = PgCluster::shared();
    let (a, b) = (cluster.fresh_database(), cluster.fresh_database());
    assert_ne!(a, b);
    connect(&a)
        .unwrap()
        .batch_execute("CREATE TABLE only_in_a (x int)")
        .unwrap();
    let n: i64 = connect(&b)
        .unwrap()
        .query_one(
            "SELECT COUNT(*) FROM pg_tables WHERE tablename = 'only_in_a'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

/// Stop and start again, and restart: the same port, the same data.
#[test]
fn stops_starts_and_restarts() {
    let cluster = PgCluster::start();
    let url = cluster.fresh_database();
    connect(&url)
        .unwrap()
        .batch_execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")
        .unwrap();
    let mut held = connect(&url).unwrap();
    cluster.restart();
    assert!(
        held.query_one("SELECT 1", &[]).is_err(),
        "a restart cuts open connections"
    );
    cluster.stop();
    assert!(
        connect(&url).is_err(),
        "a stopped server refuses connections"
    );
    cluster.start_again();
    let x: i32 = connect(&url)
        .unwrap()
        .query_one("SELECT x FROM kept", &[])
        .unwrap()
        .get(0);
    assert_eq!(x, 7);
}

/// Run by [`dies_with_a_killed_test_process`] in a child process (`DISPARO_PG_HELPER` set):
/// starts a cluster, says where it listens and where its files are, then waits to be killed.
#[test]
#[ignore = "a helper run by dies_with_a_killed_test_process"]
fn helper_start_and_wait() {
    let cluster = PgCluster::start();
    assert!(std::net::TcpStream::connect(("127.0.0.1", cluster.port())).is_ok());
    if std::env::var_os("DISPARO_PG_HELPER").is_none() {
        return;
    }
    println!("CLUSTER {} {}", cluster.port(), cluster.dir().display());
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::park();
    }
}

/// A test binary SIGKILLed while its cluster runs leaves no server behind and no files:
/// the watchdog sees the pipe close and stops the server.
#[test]
fn dies_with_a_killed_test_process() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "conformance::cluster::helper_start_and_wait",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("DISPARO_PG_HELPER", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let line = std::io::BufReader::new(out)
        .lines()
        .map(Result::unwrap)
        .find(|l| l.starts_with("CLUSTER "))
        .expect("the helper reports its cluster");
    let mut parts = line.split(' ').skip(1);
    let port: u16 = parts.next().unwrap().parse().unwrap();
    let dir = std::path::PathBuf::from(parts.next().unwrap());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "the helper's server is up"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The watchdog stops the server as soon as it sees the pipe close; stopping takes the
    // server's own time, so wait for it (bounded), the condition being checked each time.
    let deadline = Instant::now() + Duration::from_secs(60);
    while (std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() || dir.exists())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server outlived its test process"
    );
    assert!(
        !dir.exists(),
        "the cluster's folder outlived its test process"
    );
}
