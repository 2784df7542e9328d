//! A program under test as a running process (tests/dht_programs.rs, tests/nat.rs): its stdout
//! and stderr read line by line in the background, waited on with a deadline, stopped with a
//! signal, killed on drop.

#![allow(dead_code)] // Each test binary uses its part.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running process and the lines it has printed.
pub struct Running {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    patience: Duration,
    /// Every line read so far, stdout and stderr interleaved.
    pub seen: Vec<String>,
}

impl Running {
    /// Starts `command` with both outputs piped; [`wait_for`](Self::wait_for) waits at most
    /// `patience`. `name` goes into failure messages.
    pub fn spawn(name: impl Into<String>, command: &mut Command, patience: Duration) -> Running {
        let name = name.into();
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("{name} starts: {err}"));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        for stream in [Box::new(stdout) as Box<dyn Read + Send>, Box::new(stderr)] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Running {
            name,
            child,
            lines,
            patience,
            seen: Vec::new(),
        }
    }

    /// The first line (already seen, or from now) that `matches`, within the patience.
    pub fn wait_for(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.seen.iter().find(|line| matches(line)) {
            return line.clone();
        }
        let deadline = Instant::now() + self.patience;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{}: no {what} within {:?} in:\n{}",
                    self.name,
                    self.patience,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Takes in the lines printed so far.
    pub fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// Sends `signal` (`-TERM`, `-KILL`) with the shell's own `kill`, present on any machine.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("sh")
            .args(["-c", &format!("kill {signal} {}", self.child.id())])
            .status()
            .expect("sh runs");
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{}: still running after {limit:?}:\n{}",
                self.name,
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
