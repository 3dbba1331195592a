//! The local mode's mailer: each message written as one `.eml` file in an outbox folder, where
//! a mail client (or a test) opens it.
//!
//! A message is written under a hidden temporary name, synced, then linked to its final name,
//! which fails rather than replace a file already there: a reader never sees half a message, and
//! two processes sharing the folder never overwrite each other's.

use async_trait::async_trait;
use sondeo_domain::orders::{mask_email, sender_address};
use sondeo_domain::ports::{MailError, Mailer};
use sondeo_domain::time::now_ms;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Messages written by this process, numbering file names apart within a millisecond.
static WRITTEN: AtomicU64 = AtomicU64::new(0);

/// Longest masked-recipient part of a file name, in bytes.
const MAX_RECIPIENT_CHARS: usize = 80;

/// A folder receiving each sent message as `<unix-millis>-<n>-<masked recipient>.eml`.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    /// The outbox in `dir`, created (with its parents) if absent.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Outbox> {
        let dir = dir.into();
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            // Customers' addresses and their links: for the owner's eyes only.
            builder.mode(0o700);
        }
        builder.create(&dir)?;
        Ok(Outbox { dir })
    }

    /// The folder the messages are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes one message and returns its file name.
    fn write(&self, to: &str, mime: &[u8]) -> io::Result<String> {
        let recipient = file_safe(&mask_email(sender_address(to).unwrap_or(to)));
        let n = WRITTEN.fetch_add(1, Ordering::Relaxed);
        let temp = self
            .dir
            .join(format!(".outbox-{}-{n}.part", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temp)?;
        let written = file.write_all(mime).and_then(|()| file.sync_all());
        drop(file);
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        let millis = now_ms();
        let mut n = n;
        loop {
            let name = format!("{millis:013}-{n:06}-{recipient}.eml");
            let target = self.dir.join(&name);
            match std::fs::hard_link(&temp, &target) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&temp);
                    return Ok(name);
                }
                // Another process took this name in the same millisecond: the next number.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    n = WRITTEN.fetch_add(1, Ordering::Relaxed);
                }
                // A file system without hard links: rename, which is atomic but may replace.
                Err(_) if !target.exists() => {
                    std::fs::rename(&temp, &target)?;
                    return Ok(name);
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&temp);
                    return Err(e);
                }
            }
        }
    }
}

#[async_trait]
impl Mailer for Outbox {
    /// Writes the message to the folder; the message id is `outbox-<file name>`.
    async fn send_raw(&self, _from: &str, to: &str, mime: &[u8]) -> Result<String, MailError> {
        let outbox = self.clone();
        let (to, mime) = (to.to_string(), mime.to_vec());
        let written = tokio::task::spawn_blocking(move || outbox.write(&to, &mime))
            .await
            .map_err(|e| MailError::Transient(format!("outbox writer stopped: {e}")))?;
        match written {
            Ok(name) => Ok(format!("outbox-{name}")),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(MailError::Permanent(
                format!("cannot write to the outbox: {e}"),
            )),
            Err(e) => Err(MailError::Transient(format!(
                "cannot write to the outbox: {e}"
            ))),
        }
    }
}

/// `s` with every character but ASCII letters, digits, `.`, `-`, `_` and `@` as `_`, clipped.
fn file_safe(s: &str) -> String {
    let safe: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_RECIPIENT_CHARS)
        .collect();
    let safe = safe.trim_start_matches('.');
    if safe.is_empty() {
        "recipient".into()
    } else {
        safe.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "sondeo-outbox-{name}-{}-{}",
            std::process::id(),
            now_ms()
        ))
    }

    fn eml_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    #[tokio::test]
    async fn two_messages_give_two_files_holding_their_bytes() {
        // GIVEN an outbox in a folder that does not exist yet
        let dir = temp_dir("two").join("nested");
        let outbox = Outbox::new(&dir).unwrap();
        assert_eq!(outbox.dir(), dir);
        // WHEN two messages are sent, one to a named address
        let first = b"From: a@x.example\r\n\r\nfirst\r\n".to_vec();
        let second = b"From: a@x.example\r\n\r\nsecond\r\n".to_vec();
        let id1 = outbox
            .send_raw("a@x.example", "ana@example.com", &first)
            .await
            .unwrap();
        let id2 = outbox
            .send_raw("a@x.example", "Bea Ruiz <bea@example.com>", &second)
            .await
            .unwrap();
        // THEN the folder holds exactly two .eml files with those bytes, named by the ids
        let files = eml_files(&dir);
        assert_eq!(files.len(), 2, "{files:?}");
        let name = |p: &PathBuf| p.file_name().unwrap().to_str().unwrap().to_string();
        let by_id = |id: &str| {
            files
                .iter()
                .find(|p| format!("outbox-{}", name(p)) == id)
                .unwrap_or_else(|| panic!("no file for {id}: {files:?}"))
        };
        assert_eq!(std::fs::read(by_id(&id1)).unwrap(), first);
        assert_eq!(std::fs::read(by_id(&id2)).unwrap(), second);
        assert!(
            name(by_id(&id1)).ends_with("-a___@example.com.eml"),
            "{id1}"
        );
        assert!(
            name(by_id(&id2)).ends_with("-b___@example.com.eml"),
            "{id2}"
        );
        for file in &files {
            let parts: Vec<String> = name(file).splitn(3, '-').map(str::to_string).collect();
            assert!(parts[0].len() >= 13 && parts[0].bytes().all(|b| b.is_ascii_digit()));
            assert!(parts[1].bytes().all(|b| b.is_ascii_digit()));
        }
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    }

    #[tokio::test]
    async fn concurrent_sends_never_overwrite_each_other() {
        let dir = temp_dir("many");
        let outbox = Outbox::new(&dir).unwrap();
        let mut sends = tokio::task::JoinSet::new();
        for i in 0..20 {
            let outbox = outbox.clone();
            sends.spawn(async move {
                let mime = format!("Subject: {i}\r\n\r\n{i}\r\n");
                outbox
                    .send_raw("a@x.example", "ana@example.com", mime.as_bytes())
                    .await
                    .unwrap()
            });
        }
        let mut ids = Vec::new();
        while let Some(id) = sends.join_next().await {
            ids.push(id.unwrap());
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 20);
        let files = eml_files(&dir);
        assert_eq!(files.len(), 20, "no temporary file is left: {files:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn recipients_become_safe_file_name_parts() {
        assert_eq!(
            file_safe(&mask_email("ana@example.com")),
            "a___@example.com"
        );
        assert_eq!(file_safe("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(file_safe("..."), "recipient");
        assert_eq!(file_safe(&"x".repeat(300)).len(), MAX_RECIPIENT_CHARS);
    }
}
