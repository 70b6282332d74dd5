//! A throwaway PostgreSQL server for tests: Debian's `postgresql` package (installed by
//! `.ci/run`), a cluster made with `initdb` in a temporary directory, on a port of its own.
//! Run as root (as CI does), the server runs as the `postgres` user, as PostgreSQL insists.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TempCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl TempCluster {
    /// Starts a new cluster; panics with what is missing when PostgreSQL is not installed.
    pub fn start() -> TempCluster {
        let bin = server_binaries();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data = dir.path().join("data");
        let as_root = is_root();
        if as_root {
            // initdb refuses to run as root: the cluster belongs to `postgres`.
            for path in [dir.path(), &data] {
                std::fs::create_dir_all(path).expect("the cluster's directory");
                chown_to_postgres(path);
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        run(
            as_root,
            Command::new(bin.join("initdb"))
                .args(["--auth=trust", "--username=mailgate", "--no-sync", "-D"])
                .arg(&data),
        );
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.path().display()
        );
        run(
            as_root,
            Command::new(bin.join("pg_ctl"))
                .args(["-w", "-t", "120", "-o", &options, "-l"])
                .arg(dir.path().join("log"))
                .arg("-D")
                .arg(&data)
                .arg("start"),
        );
        TempCluster { dir, bin, port }
    }

    /// A URL for a new, empty database of this cluster.
    pub fn new_database(&self, name: &str) -> String {
        let mut client = postgres_client(self.port, "postgres");
        client(&format!("CREATE DATABASE {name}"));
        format!("postgres://mailgate@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        let _ = wrap(
            is_root(),
            Command::new(self.bin.join("pg_ctl"))
                .args(["-m", "immediate", "-D"])
                .arg(self.dir.path().join("data"))
                .arg("stop"),
        )
        .output();
    }
}

/// Runs one statement through `psql`, panicking with its output when it fails.
fn postgres_client(port: u16, database: &str) -> impl FnMut(&str) {
    let database = database.to_string();
    move |sql: &str| {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "mailgate", "-v", "ON_ERROR_STOP=1"])
            .args(["-p", &port.to_string(), "-d", &database, "-c", sql])
            .output()
            .expect("psql (Debian's postgresql-client)");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The newest installed server's `bin` directory.
fn server_binaries() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.retain(|bin| bin.join("initdb").exists());
    versions.sort();
    versions.pop().expect(
        "PostgreSQL's server is not installed (/usr/lib/postgresql/*/bin/initdb): \
         .ci/run installs Debian's postgresql package",
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

fn chown_to_postgres(path: &Path) {
    let status = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(path)
        .status()
        .expect("chown");
    assert!(status.success(), "chown postgres {}", path.display());
}

/// `command`, run as `postgres` when we are root.
fn wrap(as_root: bool, command: &Command) -> Command {
    let mut wrapped = if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(command.get_program());
        c
    } else {
        Command::new(command.get_program())
    };
    wrapped.args(command.get_args());
    wrapped
}

fn run(as_root: bool, command: &mut Command) {
    let out = wrap(as_root, command).output().expect("PostgreSQL's tools");
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        command,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
