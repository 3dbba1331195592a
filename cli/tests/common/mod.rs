//! What several CLI tests share: `sondeo serve` started as a child process on a free loopback
//! port, its output read line by line, and stopped when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// A running `sondeo serve`.
pub struct Serve {
    child: Child,
    /// The loopback port it listens on.
    pub port: u16,
    lines: Receiver<String>,
}

impl Serve {
    /// Starts `sondeo serve` on `data` and waits until it says it is running.
    pub fn start(data: &Path) -> Serve {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sondeo"))
            .arg("--data-dir")
            .arg(data)
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .env_remove("SONDEO_BASE_URL")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Every line is read, so that serve's prints never meet a closed pipe.
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let serve = Serve { child, port, lines };
        serve.line_with("Sondeo is running at");
        serve
    }

    /// The next line of its output holding `needle` (60 s at most).
    pub fn line_with(&self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("serve printed no line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Its process id.
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
