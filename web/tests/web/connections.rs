//! Connections against the real binary (issue #12, item 4): trickled headers and idle
//! keep-alive connections are cut off, a flood over the connection limit is refused at
//! once, and `/health/live` keeps answering throughout.

use crate::support::WebProcess;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The server's header deadline (`mail_web::http::server::HEADER_TIMEOUT`) plus room for a
/// loaded machine.
const CUT_OFF_WITHIN: Duration = Duration::from_secs(10 + 20);

/// Reads until the server closes the connection (EOF or reset); how long that took.
async fn wait_for_close(mut s: TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// `/health/live` on a fresh connection, with a deadline a liveness probe would have.
async fn probe(web: &WebProcess) -> Result<Duration, String> {
    let started = Instant::now();
    match tokio::time::timeout(Duration::from_secs(5), web.raw("/health/live")).await {
        Ok(Ok(r)) if r.starts_with("HTTP/1.1 200") => Ok(started.elapsed()),
        Ok(Ok(r)) => Err(r.lines().next().unwrap_or("").to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 5 s".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_clients_are_cut_off_while_health_live_keeps_answering() {
    let web = WebProcess::start(&[]).await;
    let mut socks = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(web.addr()).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        socks.push(s);
    }
    // Each socket sends one more header byte every half second, forever.
    let (readers, writers): (Vec<_>, Vec<_>) = socks.into_iter().map(TcpStream::into_split).unzip();
    let trickle = tokio::spawn(async move {
        let mut writers = writers;
        loop {
            for w in &mut writers {
                let _ = w.write_all(b"a").await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let waits: Vec<_> = readers
        .into_iter()
        .map(|r| {
            tokio::spawn(async move {
                let started = Instant::now();
                let mut r = r;
                let mut buf = [0u8; 1024];
                tokio::time::timeout(CUT_OFF_WITHIN, async {
                    loop {
                        match r.read(&mut buf).await {
                            Ok(0) | Err(_) => return started.elapsed(),
                            Ok(_) => {}
                        }
                    }
                })
                .await
                .ok()
            })
        })
        .collect();
    let mut probes = Vec::new();
    let until = Instant::now() + Duration::from_secs(12);
    while Instant::now() < until {
        probes.push(probe(&web).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut cut = 0;
    for w in waits {
        if w.await.unwrap().is_some() {
            cut += 1;
        }
    }
    trickle.abort();
    let failed: Vec<_> = probes.iter().filter_map(|p| p.as_ref().err()).collect();
    assert!(failed.is_empty(), "probes failed: {failed:?}");
    let slowest = probes.iter().filter_map(|p| p.as_ref().ok()).max().unwrap();
    eprintln!("{} probes, slowest {slowest:?}", probes.len());
    assert_eq!(
        cut, 300,
        "every trickling connection is closed by the server"
    );
    assert!(probe(&web).await.is_ok());
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let web = WebProcess::start(&[]).await;
    let mut s = TcpStream::connect(web.addr()).await.unwrap();
    s.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Kept alive, then nothing more: the server hangs up.
    let took = wait_for_close(s, CUT_OFF_WITHIN).await;
    assert!(
        took.is_some(),
        "idle connection still open after {CUT_OFF_WITHIN:?}"
    );
    eprintln!("idle connection closed after {took:?}");
}

#[tokio::test]
async fn connections_over_the_limit_are_refused_at_once_and_the_limit_frees_up() {
    let web = WebProcess::start(&[("MAX_CONNECTIONS", "20".into())]).await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(web.addr()).await.unwrap());
    }
    // The server accepts the 20 in its own time (slowly on a busy machine): until it has, the
    // one too many may still be served; once it has, it is refused at once.
    let refused =
        test_services::wait_until(Duration::from_secs(10), "the 21st refused", || async {
            let reply = tokio::time::timeout(Duration::from_secs(5), web.raw("/health/live"))
                .await
                .expect("answered at once, not left waiting")
                .unwrap();
            reply.starts_with("HTTP/1.1 503").then_some(reply)
        })
        .await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("too many connections"));
    // The silent ones are cut off by the header deadline; then there is room again.
    for s in idle {
        assert!(wait_for_close(s, CUT_OFF_WITHIN).await.is_some());
    }
    test_services::wait_until(Duration::from_secs(10), "room again", || async {
        probe(&web).await.ok()
    })
    .await;
}
