//! A loopback TCP proxy in front of a server that loses answers on purpose: armed, it
//! forwards the next request holding a `COMMIT` to the server, lets the server answer, and
//! closes the client's connection instead of passing the answer on: a commit that applied
//! and whose answer was lost, as a flaky network or a proxy restart makes one. It can also
//! go dark (close every connection at once) to make the outcome unreadable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct LosingProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct State {
    /// Commit answers still to lose.
    armed: AtomicUsize,
    /// Commit answers lost so far.
    lost: AtomicUsize,
    /// Once a commit answer is lost, close every connection (until `dark` is cleared).
    dark_after_loss: AtomicBool,
    dark: AtomicBool,
}

impl LosingProxy {
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<LosingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if shared.dark.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        relay(client, server, state).await;
                    }
                });
            }
        });
        Ok(LosingProxy {
            addr,
            state,
            accept,
        })
    }

    /// The URL clients use instead of the server's.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Loses the answers to the next `n` commits.
    pub fn lose_next_commit_answers(&self, n: usize) {
        self.state.armed.store(n, Ordering::SeqCst);
    }

    /// After the next lost answer, refuse every connection until [`heal`](Self::heal).
    pub fn go_dark_after_loss(&self) {
        self.state.dark_after_loss.store(true, Ordering::SeqCst);
    }

    /// Passes everything again.
    pub fn heal(&self) {
        self.state.dark_after_loss.store(false, Ordering::SeqCst);
        self.state.dark.store(false, Ordering::SeqCst);
    }

    /// Commit answers lost so far.
    pub fn lost(&self) -> usize {
        self.state.lost.load(Ordering::SeqCst)
    }
}

impl Drop for LosingProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Whether a request carries the statement `COMMIT` (whatever the encoding, JSON or
/// protobuf, the SQL text travels as is; no other statement of the store contains it).
fn holds_commit(bytes: &[u8]) -> bool {
    bytes.windows(b"COMMIT".len()).any(|w| w == b"COMMIT")
}

async fn relay(client: TcpStream, server: TcpStream, state: Arc<State>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let lose_answer = Arc::new(AtomicBool::new(false));
    let upstream = {
        let (state, lose_answer) = (Arc::clone(&state), Arc::clone(&lose_answer));
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if holds_commit(&buf[..n])
                    && state
                        .armed
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| a.checked_sub(1))
                        .is_ok()
                {
                    lose_answer.store(true, Ordering::SeqCst);
                }
                if server_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match server_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if lose_answer.load(Ordering::SeqCst) {
            // The server answered the commit: swallow the answer and hang up.
            state.lost.fetch_add(1, Ordering::SeqCst);
            if state.dark_after_loss.load(Ordering::SeqCst) {
                state.dark.store(true, Ordering::SeqCst);
            }
            break;
        }
        if client_write.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    upstream.abort();
}
