//! A TCP proxy in front of a service, for network faults a real cluster produces: a silent
//! partition (packets dropped, no FIN/RST), replies lost on the way back, connections reset.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const PASS: u8 = 0;
const BLACKHOLE: u8 = 1;
const LOSE_REPLIES: u8 = 2;

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Forward both ways.
    Healthy,
    /// Drop everything both ways, on open connections and on new ones (accepted, then
    /// silent): what a partition looks like to both ends. Connections opened while
    /// black-holed stay dead after [`Network::Healthy`], like flows whose state a
    /// middlebox lost.
    BlackHole,
    /// Forward requests, drop the replies: the server acts, the client never hears.
    LoseReplies,
}

/// A proxy listening on a free loopback port, forwarding to `127.0.0.1:<upstream>`.
pub struct TcpProxy {
    port: u16,
    mode: Arc<AtomicU8>,
    /// Bumped by [`TcpProxy::reset_all`]: connections of an older generation are closed.
    generation: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Starts forwarding to `upstream_port`.
    pub async fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(PASS));
        let generation = Arc::new(AtomicU64::new(0));
        let (m, g) = (mode.clone(), generation.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (m, g) = (m.clone(), g.clone());
                tokio::spawn(async move { serve(client, upstream_port, m, g).await });
            }
        });
        TcpProxy {
            port,
            mode,
            generation,
            accept,
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/0`, for a proxy in front of Redis.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Changes what happens to traffic from now on.
    pub fn set(&self, network: Network) {
        let m = match network {
            Network::Healthy => PASS,
            Network::BlackHole => BLACKHOLE,
            Network::LoseReplies => LOSE_REPLIES,
        };
        self.mode.store(m, Ordering::SeqCst);
    }

    /// Closes every open connection (the clients see a reset or EOF).
    pub fn reset_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.reset_all();
    }
}

async fn serve(
    client: TcpStream,
    upstream_port: u16,
    mode: Arc<AtomicU8>,
    generation: Arc<AtomicU64>,
) {
    let born = generation.load(Ordering::SeqCst);
    if mode.load(Ordering::SeqCst) == BLACKHOLE {
        // Accepted, then never answered, for good.
        let _hold = client;
        std::future::pending::<()>().await;
        return;
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pump(cr, sw, mode.clone(), generation.clone(), born, false);
    let down = pump(sr, cw, mode, generation, born, true);
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Copies `from` to `to` until EOF, an error or a reset; drops what the mode says to drop.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: Arc<AtomicU8>,
    generation: Arc<AtomicU64>,
    born: u64,
    is_reply: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            r = from.read(&mut buf) => r,
            _ = wait_for_reset(&generation, born) => return,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if generation.load(Ordering::SeqCst) != born {
            return;
        }
        let drop_it = match mode.load(Ordering::SeqCst) {
            BLACKHOLE => true,
            LOSE_REPLIES => is_reply,
            _ => false,
        };
        if !drop_it && to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn wait_for_reset(generation: &AtomicU64, born: u64) {
    while generation.load(Ordering::SeqCst) == born {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
