//! The catcher's SMTP server: the verbs lettre and common clients use (EHLO/HELO, MAIL,
//! RCPT, DATA, RSET, NOOP, VRFY, QUIT), no auth, no relay, no TLS.
//!
//! Each accepted message is stored, then acknowledged after the configured latency (a
//! relay's queueing and fsync time); the connection stays open for the next message, as a
//! pooled client expects. Lines are limited to 4 KiB and messages to 25 MiB: beyond that
//! the client gets a 5xx and nothing is stored.

use super::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const MAX_LINE: usize = 4096;
const MAX_MESSAGE: usize = 25 * 1024 * 1024;

/// Serves SMTP on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, store: Arc<Store>, latency: Duration) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let store = store.clone();
        tokio::spawn(async move {
            let (r, w) = stream.into_split();
            if let Err(e) = session(BufReader::new(r), w, &store, latency).await {
                tracing::debug!(error = %e, "SMTP session ended");
            }
        });
    }
}

enum Line {
    Text(String),
    TooLong,
    Closed,
}

async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    buf: &mut Vec<u8>,
) -> std::io::Result<Line> {
    buf.clear();
    let n = (&mut *reader)
        .take(MAX_LINE as u64 + 2)
        .read_until(b'\n', buf)
        .await?;
    if n == 0 {
        return Ok(Line::Closed);
    }
    if !buf.ends_with(b"\n") {
        // Swallow the rest of the over-long line.
        let mut rest = Vec::new();
        reader.read_until(b'\n', &mut rest).await?;
        return Ok(Line::TooLong);
    }
    Ok(Line::Text(
        String::from_utf8_lossy(buf)
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
    ))
}

/// One SMTP conversation.
async fn session<R, W>(
    mut reader: BufReader<R>,
    mut w: W,
    store: &Store,
    latency: Duration,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    w.write_all(b"220 mail-catcher ESMTP ready\r\n").await?;
    let mut sender: Option<String> = None;
    let mut recipients: Vec<String> = Vec::new();
    let mut buf = Vec::with_capacity(256);
    loop {
        let line = match read_line(&mut reader, &mut buf).await? {
            Line::Closed => return Ok(()),
            Line::TooLong => {
                w.write_all(b"500 line too long\r\n").await?;
                continue;
            }
            Line::Text(t) => t,
        };
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("");
        let reply: &[u8] = match verb {
            "EHLO" => b"250-mail-catcher\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-PIPELINING\r\n250 SIZE 26214400\r\n",
            "HELO" => b"250 mail-catcher\r\n",
            "NOOP" => b"250 OK\r\n",
            "VRFY" => b"252 cannot verify, but will accept\r\n",
            "RSET" => {
                sender = None;
                recipients.clear();
                b"250 OK\r\n"
            }
            "QUIT" => {
                w.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ if upper.starts_with("MAIL FROM:") => {
                sender = Some(address(&line[10..]));
                recipients.clear();
                b"250 OK\r\n"
            }
            _ if upper.starts_with("RCPT TO:") => {
                if sender.is_none() {
                    b"503 MAIL first\r\n"
                } else {
                    recipients.push(address(&line[8..]));
                    b"250 OK\r\n"
                }
            }
            "DATA" => {
                if sender.is_none() || recipients.is_empty() {
                    b"503 MAIL and RCPT first\r\n"
                } else {
                    w.write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n").await?;
                    let Some(data) = read_data(&mut reader).await? else {
                        w.write_all(b"552 message too large\r\n").await?;
                        sender = None;
                        recipients.clear();
                        continue;
                    };
                    let from = sender.take().unwrap_or_default();
                    let to = std::mem::take(&mut recipients);
                    let stored = store.save(&from, &to, &data);
                    if !latency.is_zero() {
                        tokio::time::sleep(latency).await;
                    }
                    match stored {
                        Ok(id) => {
                            w.write_all(format!("250 OK queued as {id}\r\n").as_bytes()).await?;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "message not stored");
                            w.write_all(b"451 cannot store the message now\r\n").await?;
                        }
                    }
                    continue;
                }
            }
            _ => b"502 command not implemented\r\n",
        };
        w.write_all(reply).await?;
    }
}

/// Reads DATA up to the lone dot, undoing dot-stuffing. `None` if it exceeds the limit
/// (the rest is read and dropped so the session can go on).
async fn read_data<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    let mut too_large = false;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            break;
        }
        let body = if line.starts_with(b"..") {
            &line[1..]
        } else {
            &line[..]
        };
        if data.len() + body.len() > MAX_MESSAGE {
            too_large = true;
        }
        if !too_large {
            data.extend_from_slice(body);
        }
    }
    Ok((!too_large).then_some(data))
}

/// `<a@b>` (with optional parameters after it) ⇒ `a@b`.
fn address(arg: &str) -> String {
    let arg = arg.trim();
    match (arg.find('<'), arg.find('>')) {
        (Some(start), Some(end)) if start < end => arg[start + 1..end].to_owned(),
        _ => arg.split_whitespace().next().unwrap_or("").to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(address("<a@example.test> SIZE=100"), "a@example.test");
        assert_eq!(address(" b@example.test"), "b@example.test");
        assert_eq!(address("<>"), "");
    }

    #[tokio::test]
    async fn a_scripted_session_stores_one_message() {
        let dir = std::env::temp_dir().join(format!("smtp-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let input = b"EHLO x\r\nMAIL FROM:<s@example.test>\r\nRCPT TO:<r@example.test>\r\nDATA\r\nSubject: hi\r\n\r\n..dot\r\n.\r\nRCPT TO:<r@example.test>\r\nQUIT\r\n";
        let mut out = Vec::new();
        session(BufReader::new(&input[..]), &mut out, &store, Duration::ZERO)
            .await
            .unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("250 OK queued as 1"), "{out}");
        assert!(
            out.contains("503 MAIL first"),
            "RCPT after a finished message needs a new MAIL: {out}"
        );
        assert!(out.ends_with("221 bye\r\n"));
        let (meta, raw) = store.get(1).unwrap();
        assert_eq!(meta.recipients, vec!["r@example.test"]);
        assert_eq!(raw, b"Subject: hi\r\n\r\n.dot\r\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
