//! The caught messages: `<dir>/<id>.eml` (the message as received, after two envelope
//! headers) and `<dir>/index.jsonl` (one line per message: who, when, subject, size), which
//! is read back at start so the catcher keeps its mail across restarts.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One message in the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// 1, 2, 3, … in arrival order.
    pub id: u64,
    /// Epoch seconds.
    pub received_at: f64,
    /// `MAIL FROM`.
    pub sender: String,
    /// `RCPT TO`, in order.
    pub recipients: Vec<String>,
    /// The decoded `Subject:`.
    pub subject: String,
    /// Bytes of the message.
    pub size: usize,
}

/// What the drill and the tests count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Messages kept.
    pub messages: u64,
    /// Distinct recipients.
    pub recipients: u64,
    /// Messages beyond the first for a recipient (a recipient mailed 3 times adds 2).
    pub duplicates: u64,
}

/// Storing a message failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot store mail in {dir}: {source}")]
pub struct StoreError {
    dir: String,
    source: std::io::Error,
}

/// The message store.
pub struct Store {
    dir: PathBuf,
    index: Mutex<Vec<Meta>>,
}

impl Store {
    /// Opens (and creates) `dir`, reading the index a previous run left.
    ///
    /// # Errors
    /// The directory cannot be created or read.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError {
            dir: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let index_path = dir.join("index.jsonl");
        let text = match std::fs::read_to_string(&index_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(err(e)),
        };
        // A line cut short by a crash is skipped, not fatal.
        let index = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Meta>(l).ok())
            .collect();
        Ok(Store {
            dir: dir.to_path_buf(),
            index: Mutex::new(index),
        })
    }

    /// Keeps one message; returns its id.
    ///
    /// # Errors
    /// Disk errors (the SMTP server then answers 451 and the sender retries).
    pub fn save(
        &self,
        sender: &str,
        recipients: &[String],
        data: &[u8],
    ) -> Result<u64, StoreError> {
        let subject = mail_parser::MessageParser::default()
            .parse_headers(data)
            .and_then(|m| m.subject().map(str::to_owned))
            .unwrap_or_default();
        let err = |source| StoreError {
            dir: self.dir.display().to_string(),
            source,
        };
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let id = index.last().map_or(1, |m| m.id + 1);
        let mut eml = Vec::with_capacity(data.len() + 128);
        eml.extend_from_slice(format!("X-Envelope-From: <{sender}>\r\n").as_bytes());
        let to: Vec<String> = recipients.iter().map(|r| format!("<{r}>")).collect();
        eml.extend_from_slice(format!("X-Envelope-To: {}\r\n", to.join(", ")).as_bytes());
        eml.extend_from_slice(data);
        std::fs::write(self.eml_path(id), &eml).map_err(err)?;
        let meta = Meta {
            id,
            received_at: now_epoch(),
            sender: sender.to_owned(),
            recipients: recipients.to_vec(),
            subject,
            size: data.len(),
        };
        let mut line = serde_json::to_vec(&meta).unwrap_or_default();
        line.push(b'\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("index.jsonl"))
            .and_then(|mut f| f.write_all(&line))
            .map_err(err)?;
        index.push(meta);
        Ok(id)
    }

    fn eml_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:08}.eml"))
    }

    /// The newest messages first, those matching `query` (in a recipient, the sender or
    /// the subject) when given, `limit` from `offset`; and how many matched in all.
    pub fn list(&self, query: Option<&str>, offset: usize, limit: usize) -> (Vec<Meta>, usize) {
        let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let q = query.map(str::to_lowercase).filter(|q| !q.is_empty());
        let matches = |m: &&Meta| {
            q.as_ref().is_none_or(|q| {
                m.subject.to_lowercase().contains(q)
                    || m.sender.to_lowercase().contains(q)
                    || m.recipients.iter().any(|r| r.to_lowercase().contains(q))
            })
        };
        let total = index.iter().filter(matches).count();
        let page = index
            .iter()
            .rev()
            .filter(matches)
            .skip(offset)
            .take(limit)
            .cloned()
            .collect();
        (page, total)
    }

    /// Every message's index entry, oldest first.
    pub fn all(&self) -> Vec<Meta> {
        self.index.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// One message: its index entry and its bytes as received (without envelope headers).
    pub fn get(&self, id: u64) -> Option<(Meta, Vec<u8>)> {
        let meta = {
            let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
            index.iter().find(|m| m.id == id).cloned()?
        };
        let raw = std::fs::read(self.eml_path(id)).ok()?;
        // Skip the two envelope headers we prepended.
        let mut rest = raw.as_slice();
        for _ in 0..2 {
            if let Some(pos) = rest.windows(2).position(|w| w == b"\r\n") {
                rest = &rest[pos + 2..];
            }
        }
        Some((meta, rest.to_vec()))
    }

    /// Counts messages, distinct recipients and duplicates.
    pub fn stats(&self) -> Stats {
        let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let mut per_recipient: HashMap<&str, u64> = HashMap::new();
        for m in index.iter() {
            for r in &m.recipients {
                *per_recipient.entry(r.as_str()).or_default() += 1;
            }
        }
        Stats {
            messages: index.len() as u64,
            recipients: per_recipient.len() as u64,
            duplicates: per_recipient.values().map(|n| n - 1).sum(),
        }
    }

    /// Deletes every message.
    ///
    /// # Errors
    /// Disk errors (what could be deleted is gone).
    pub fn clear(&self) -> Result<(), StoreError> {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        for m in index.iter() {
            let _ = std::fs::remove_file(self.eml_path(m.id));
        }
        index.clear();
        match std::fs::remove_file(self.dir.join("index.jsonl")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError {
                dir: self.dir.display().to_string(),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_messages_across_reopen_and_counts_duplicates() {
        let dir = std::env::temp_dir().join(format!("store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let mail = b"Subject: =?UTF-8?B?44GT44KT44Gr44Gh44Gv?=\r\n\r\nbody\r\n";
        store
            .save("s@example.test", &["a@example.test".into()], mail)
            .unwrap();
        store
            .save("s@example.test", &["b@example.test".into()], mail)
            .unwrap();
        store
            .save("s@example.test", &["a@example.test".into()], mail)
            .unwrap();
        drop(store);
        let store = Store::open(&dir).unwrap();
        assert_eq!(
            store.stats(),
            Stats {
                messages: 3,
                recipients: 2,
                duplicates: 1
            }
        );
        let (page, total) = store.list(Some("B@EXAMPLE"), 0, 10);
        assert_eq!((page.len(), total), (1, 1));
        let (meta, raw) = store.get(3).unwrap();
        assert_eq!(meta.subject, "こんにちは");
        assert_eq!(raw, mail);
        assert_eq!(store.list(None, 0, 2).0[0].id, 3, "newest first");
        store
            .save("s@example.test", &["c@example.test".into()], mail)
            .unwrap();
        assert_eq!(store.all().last().unwrap().id, 4);
        store.clear().unwrap();
        assert_eq!(store.stats().messages, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
