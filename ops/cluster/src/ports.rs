//! Loopback ports: picking a free one, and asking whether a service accepts connections.

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

/// `port` can be bound on all interfaces right now (nothing listens on it).
pub fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
}

/// The first free port from `from` upwards (a taken default moves to the next one, and the
/// printed URLs say which).
pub fn first_free(from: u16) -> u16 {
    first_free_excluding(from, &[])
}

/// Like [`first_free`], skipping ports already handed out but maybe not bound yet.
pub fn first_free_excluding(from: u16, taken: &[u16]) -> u16 {
    (from..=u16::MAX)
        .find(|p| !taken.contains(p) && is_free(*p))
        .unwrap_or(0)
}

/// Something accepts TCP connections on `127.0.0.1:port`.
pub async fn accepts(port: u16) -> bool {
    let connect = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port));
    matches!(
        tokio::time::timeout(Duration::from_millis(500), connect).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listening_port_is_skipped() {
        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let taken = listener.local_addr().unwrap().port();
        assert!(!is_free(taken));
        assert!(accepts(taken).await);
        assert_ne!(first_free(taken), taken);
        assert!(first_free(taken) > taken);
        let next = first_free(taken);
        assert_ne!(first_free_excluding(taken, &[next]), next);
    }
}
