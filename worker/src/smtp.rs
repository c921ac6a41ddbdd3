//! SMTP connections, pooled by us rather than by lettre.
//!
//! lettre's async pool puts a connection back when the send future is dropped, even in the
//! middle of a transaction, and tests it later with a NOOP that has no timeout: one stalled
//! server then poisons every later send. Here a connection goes back to the pool only after
//! a successful transaction; on any error or timeout it is dropped. Idle connections older
//! than a couple of seconds are checked with NOOP (inside the same timeout) before reuse.

use crate::config::{Settings, SmtpTls};
use lettre::address::Envelope;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Idle connections younger than this are reused without a NOOP round trip.
const FRESH: Duration = Duration::from_secs(2);

struct Idle {
    conn: AsyncSmtpConnection,
    since: Instant,
}

/// Why a send did not go through.
#[derive(Debug)]
pub enum PoolError {
    /// lettre reported an SMTP or network error.
    Smtp(SmtpError),
    /// The TCP connection could not be opened.
    Connect(std::io::Error),
    /// Nothing within the timeout.
    Timeout,
}

/// A pool of SMTP connections to one server.
pub struct SmtpPool {
    host: String,
    port: u16,
    tls: SmtpTls,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Idle>>,
}

impl SmtpPool {
    /// A pool keeping at most one idle connection per worker slot.
    pub fn new(settings: &Settings) -> Self {
        SmtpPool {
            host: settings.smtp_host.clone(),
            port: settings.smtp_port,
            tls: settings.smtp_tls,
            credentials: settings
                .smtp_credentials
                .as_ref()
                .map(|(u, p)| Credentials::new(u.clone(), p.expose().to_owned())),
            hello: ClientId::default(),
            timeout: settings.smtp_timeout,
            max_idle: settings.concurrency,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends one message; the whole transaction (including connecting) gets `SMTP_TIMEOUT`.
    ///
    /// # Errors
    /// [`PoolError`].
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<(), PoolError> {
        let attempt = async {
            let mut conn = self.checkout().await?;
            // On error lettre has already aborted the connection; it is dropped here.
            conn.send(envelope, message)
                .await
                .map_err(PoolError::Smtp)?;
            self.checkin(conn);
            Ok(())
        };
        // A process paused mid-transaction must not call a mail the server accepted meanwhile
        // a failure: it would be sent again.
        service_runtime::timeouts::timeout_tolerating_pauses(self.timeout, attempt)
            .await
            .unwrap_or(Err(PoolError::Timeout))
    }

    async fn checkout(&self) -> Result<AsyncSmtpConnection, PoolError> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(mut idle) = idle else { break };
            if idle.conn.has_broken() {
                continue;
            }
            if idle.since.elapsed() < FRESH || idle.conn.test_connected().await {
                return Ok(idle.conn);
            }
        }
        self.connect().await
    }

    fn checkin(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, PoolError> {
        let server = (self.host.as_str(), self.port);
        let timeout = Some(self.timeout);
        let mut conn = match self.tls {
            SmtpTls::None => AsyncSmtpConnection::connect_with_transport(
                Box::new(BoundedReplies::new(self.tcp().await?)),
                &self.hello,
            )
            .await
            .map_err(PoolError::Smtp)?,
            SmtpTls::Tls => {
                let tls = TlsParameters::new(self.host.clone()).map_err(PoolError::Smtp)?;
                AsyncSmtpConnection::connect_tokio1(server, timeout, &self.hello, Some(tls), None)
                    .await
                    .map_err(PoolError::Smtp)?
            }
            SmtpTls::StartTls => {
                let mut c = AsyncSmtpConnection::connect_with_transport(
                    Box::new(BoundedReplies::new(self.tcp().await?)),
                    &self.hello,
                )
                .await
                .map_err(PoolError::Smtp)?;
                let tls = TlsParameters::new(self.host.clone()).map_err(PoolError::Smtp)?;
                c.starttls(tls, &self.hello)
                    .await
                    .map_err(PoolError::Smtp)?;
                c
            }
        };
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(PoolError::Smtp)?;
        }
        Ok(conn)
    }

    /// A TCP connection with `TCP_NODELAY`. lettre writes the message body and the final
    /// `.` line in two writes; with Nagle's algorithm on, the second waits for the ACK of the
    /// first, which the server delays (up to 40 ms on Linux) because it has nothing to answer
    /// yet — one stall per mail, which capped a worker slot at about 22 mails/s.
    /// (Implicit TLS still goes through lettre's own connect, which has no such option.)
    async fn tcp(&self) -> Result<tokio::net::TcpStream, PoolError> {
        let connect = tokio::net::TcpStream::connect((self.host.as_str(), self.port));
        let stream = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| PoolError::Timeout)?
            .map_err(PoolError::Connect)?;
        stream.set_nodelay(true).map_err(PoolError::Connect)?;
        Ok(stream)
    }
}

/// Most bytes a server may send between two of our writes. SMTP answers each command with a
/// few lines (an `EHLO` reply is under a kilobyte, a TLS handshake's certificates a few);
/// lettre reads a reply line into memory until its end, so without a bound a server sending a
/// line without end would take all the memory there is.
const MAX_REPLY_BYTES: usize = 1024 * 1024;

/// A TCP stream that fails a read once the server has sent more than [`MAX_REPLY_BYTES`]
/// since our last write (below TLS after STARTTLS, where the same bound holds for the
/// encrypted bytes).
#[derive(Debug)]
struct BoundedReplies {
    inner: tokio::net::TcpStream,
    since_write: usize,
}

impl BoundedReplies {
    fn new(inner: tokio::net::TcpStream) -> Self {
        BoundedReplies {
            inner,
            since_write: 0,
        }
    }
}

impl tokio::io::AsyncRead for BoundedReplies {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.since_write > MAX_REPLY_BYTES {
            return std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "SMTP server sent more than {MAX_REPLY_BYTES} bytes without waiting for us"
                ),
            )));
        }
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.since_write += read;
        polled
    }
}

impl tokio::io::AsyncWrite for BoundedReplies {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.since_write = 0;
        std::pin::Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl lettre::transport::smtp::client::AsyncTokioStream for BoundedReplies {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.inner.peer_addr()
    }
}
