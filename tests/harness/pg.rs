//! A real, throwaway PostgreSQL cluster for the tests: a temp data dir, a free port on
//! 127.0.0.1, its unix socket inside the temp dir, password authentication (scram-sha-256)
//! so that a wrong password is really refused, fsync off.
//!
//! The cluster dies with the test process, even on a panic or a SIGKILL: a watchdog shell
//! waits on a pipe whose write end only this process holds, and stops the server (and
//! removes the temp dir) when the pipe closes. One cluster per test binary
//! ([`PgCluster::shared`]); each test takes a database of its own ([`PgCluster::fresh_database`]).
//! The server binaries come from PATH or Debian's /usr/lib/postgresql/*/bin, installed by
//! scripts/test-deps.sh when missing.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

pub const USER: &str = "disparo";
pub const PASSWORD: &str = "conformance-pw";

pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// The watchdog and the pipe to it: when the pipe closes (this process ends), the
    /// server stops.
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
    databases: AtomicU32,
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe extern "C" {
        fn geteuid() -> u32;
    }
    unsafe { geteuid() == 0 }
}

/// The folder of `initdb`, `pg_ctl` and `postgres`, if a server is installed.
fn find_bin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() {
                let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
                return real.parent().map(Path::to_path_buf);
            }
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn bin_dir() -> PathBuf {
    if let Some(bin) = find_bin() {
        return bin;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-deps.sh");
    let status = Command::new("bash")
        .arg(&script)
        .status()
        .expect("run scripts/test-deps.sh");
    assert!(status.success(), "scripts/test-deps.sh failed: {status}");
    find_bin().expect("scripts/test-deps.sh installed no PostgreSQL server (initdb)")
}

/// A CA and a server certificate it signed for `localhost` and 127.0.0.1, with openssl
/// (installed with PostgreSQL's server packages).
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=disparo test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

impl PgCluster {
    /// Creates and starts a new cluster.
    pub fn start() -> PgCluster {
        PgCluster::start_inner(false)
    }

    /// A cluster that also speaks TLS, with a certificate for `localhost` and 127.0.0.1 from
    /// a CA of its own ([`PgCluster::ca_cert`]). Plain connections are still accepted.
    pub fn start_with_tls() -> PgCluster {
        PgCluster::start_inner(true)
    }

    /// The PEM file of the CA that signed a TLS cluster's certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn start_inner(tls: bool) -> PgCluster {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("disparo-pg-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let pwfile = dir.path().join("password");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        std::fs::create_dir(dir.path().join("sock")).unwrap();
        if tls {
            make_certificates(dir.path());
        }
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown -R postgres {:?}", dir.path());
        }
        let cluster = PgCluster {
            bin,
            port,
            watchdog: Mutex::new(None),
            databases: AtomicU32::new(0),
            dir,
        };
        // First, so that even a cluster that fails to initialise leaves nothing behind.
        *cluster.watchdog.lock().unwrap() = Some(cluster.spawn_watchdog());
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                USER.as_ref(),
                "--auth=scram-sha-256".as_ref(),
                format!("--pwfile={}", pwfile.display()).as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
            ],
        );
        let mut conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n",
            cluster.dir.path().join("sock").display()
        );
        if tls {
            let d = cluster.dir.path();
            conf.push_str(&format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                d.join("server.crt").display(),
                d.join("server.key").display()
            ));
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .expect("write postgresql.conf");
        cluster.start_again();
        cluster
    }

    /// The cluster of this test binary, started on first use.
    pub fn shared() -> &'static PgCluster {
        static SHARED: OnceLock<PgCluster> = OnceLock::new();
        SHARED.get_or_init(PgCluster::start)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A command for one of the server binaries, as the user that owns the cluster.
    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        let mut cmd = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.current_dir(self.dir.path());
        cmd
    }

    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} failed: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data();
        let log = self.dir.path().join("server.log");
        let mut all: Vec<&std::ffi::OsStr> = vec![
            "-D".as_ref(),
            data.as_os_str(),
            "-l".as_ref(),
            log.as_os_str(),
        ];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        self.run("pg_ctl", &all);
    }

    /// The shell that stops the server once this process is gone (its stdin reaches EOF):
    /// `pg_ctl stop` works whoever started the server, so restarts need no new watchdog.
    fn spawn_watchdog(&self) -> (Child, ChildStdin) {
        let script = format!(
            "read _ ; '{bin}/pg_ctl' -D '{data}' -m immediate -w stop >/dev/null 2>&1 ; rm -rf '{dir}'",
            bin = self.bin.display(),
            data = self.data().display(),
            dir = self.dir.path().display(),
        );
        let mut cmd = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "sh", "-c", &script]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", &script]);
            c
        };
        let mut child = cmd
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the cluster's watchdog");
        let stdin = child.stdin.take().expect("the watchdog's stdin is piped");
        (child, stdin)
    }

    /// A superuser URL to the `postgres` database.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    /// A new, empty database; returns its URL.
    pub fn fresh_database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::SeqCst);
        let name = format!("t{}_{n}", std::process::id());
        let mut client = postgres::Client::connect(&self.url(), postgres::NoTls)
            .expect("connect to the test cluster");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        self.url_for(&name)
    }

    /// `pg_ctl restart`: every connection is cut, the server comes back on the same port.
    pub fn restart(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "restart"]);
    }

    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]);
    }

    pub fn start_again(&self) {
        self.pg_ctl(&["-w", "start"]);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Closing the pipe makes the watchdog stop the server and remove the folder.
        if let Ok(mut w) = self.watchdog.lock()
            && let Some((mut child, pipe)) = w.take()
        {
            drop(pipe);
            let _ = child.wait();
        }
    }
}
