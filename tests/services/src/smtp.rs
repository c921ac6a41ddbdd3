//! An in-process SMTP server for tests: records every accepted message and injects faults.
//!
//! It speaks enough RFC 5321 for lettre (EHLO/HELO, MAIL, RCPT, DATA with dot-unstuffing,
//! RSET, NOOP, QUIT). Faults are queued with [`SmtpServer::push_fault`] and consumed one per
//! mail transaction, so a test can say "the next two messages get 451, then accept".

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// What the server does with one mail transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer the end of DATA with this code and text (e.g. 451 or 550) instead of 250.
    Reply(u16, String),
    /// Read the message, then never answer (the client must time out).
    Stall,
    /// Read the message, then close the connection without answering.
    Drop,
}

/// One accepted message.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// Envelope sender.
    pub from: String,
    /// Envelope recipients.
    pub to: Vec<String>,
    /// The message as transmitted (headers and body), dot-unstuffed.
    pub data: Vec<u8>,
}

impl ReceivedMail {
    /// The parsed MIME message.
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.data)
            .expect("unparseable message")
    }
}

#[derive(Default)]
struct State {
    accepted: Vec<ReceivedMail>,
    faults: VecDeque<Fault>,
    transactions: u64,
    /// Time "spent" on each message before it is accepted (like a real server's processing),
    /// so that tests can catch jobs in flight.
    latency: Duration,
}

/// The server; stops accepting when dropped.
pub struct SmtpServer {
    port: u16,
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpServer {
    /// Listens on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let notify = Arc::new(Notify::new());
        let (s, n) = (state.clone(), notify.clone());
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(session(sock, s.clone(), n.clone()));
            }
        });
        SmtpServer {
            port,
            state,
            notify,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Queues a fault for the next transaction that has none yet.
    pub fn push_fault(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push_back(fault);
    }

    /// Makes the server take `latency` over every message before accepting it.
    pub fn set_latency(&self, latency: Duration) {
        self.state.lock().unwrap().latency = latency;
    }

    /// Messages accepted so far.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.state.lock().unwrap().accepted.clone()
    }

    /// Number of messages accepted so far.
    pub fn count(&self) -> usize {
        self.state.lock().unwrap().accepted.len()
    }

    /// Mail transactions seen (accepted or faulted).
    pub fn transactions(&self) -> u64 {
        self.state.lock().unwrap().transactions
    }

    /// Waits until at least `n` messages were accepted.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            if self.count() >= n {
                return self.messages();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "SMTP server got {} of {n} messages within {timeout:?}",
                    self.count()
                );
            }
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn session(sock: TcpStream, state: Arc<Mutex<State>>, notify: Arc<Notify>) {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    let mut from = String::new();
    let mut to = Vec::new();
    if w.write_all(b"220 test-services ESMTP\r\n").await.is_err() {
        return;
    }
    loop {
        line.clear();
        match r.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let upper = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-test-services\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n"
        } else if upper.starts_with("HELO") || upper == "RSET" || upper == "NOOP" {
            if upper == "RSET" {
                from.clear();
                to.clear();
            }
            b"250 OK\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&line[10..]);
            to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(address(&line[8..]));
            b"250 OK\r\n"
        } else if upper == "DATA" {
            if w.write_all(b"354 go ahead\r\n").await.is_err() {
                return;
            }
            let Some(data) = read_data(&mut r).await else {
                return;
            };
            let fault = {
                let mut st = state.lock().unwrap();
                st.transactions += 1;
                let fault = st.faults.pop_front();
                if fault.is_none() {
                    st.accepted.push(ReceivedMail {
                        from: std::mem::take(&mut from),
                        to: std::mem::take(&mut to),
                        data,
                    });
                }
                fault
            };
            notify.notify_waiters();
            match fault {
                None => {
                    if w.write_all(b"250 OK queued\r\n").await.is_err() {
                        return;
                    }
                }
                Some(Fault::Reply(code, text)) => {
                    if w.write_all(format!("{code} {text}\r\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Some(Fault::Stall) => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
                Some(Fault::Drop) => return,
            }
            continue;
        } else if upper == "QUIT" {
            let _ = w.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"502 command not implemented\r\n"
        };
        if w.write_all(reply).await.is_err() {
            return;
        }
    }
}

fn address(arg: &str) -> String {
    let arg = arg.trim();
    let inner = arg
        .strip_prefix('<')
        .and_then(|a| a.split_once('>').map(|(addr, _)| addr))
        .unwrap_or(arg);
    inner.to_string()
}

async fn read_data<R: AsyncBufReadExt + Unpin>(r: &mut R) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).await.ok()? == 0 {
            return None;
        }
        if line == b".\r\n" || line == b".\n" {
            return Some(data);
        }
        let body = if line.starts_with(b"..") {
            &line[1..]
        } else {
            &line[..]
        };
        data.extend_from_slice(body);
    }
}
