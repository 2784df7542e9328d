//! The `dht_node` and `dht_client` programs as separate processes: the node prints its address,
//! the client stores and gets a value through it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The example binaries next to this test's binary. `cargo test` builds examples, but not when
/// only this test is selected, and never rebuilds stale ones for it: build them once here.
/// `--workspace` unifies features as `cargo test --workspace` does, so after it this is a no-op
/// (without it, cargo builds a second copy of many dependencies).
fn example(name: &str) -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile folder");
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args([
            "build",
            "--quiet",
            "--workspace",
            "--example",
            "dht_node",
            "--example",
            "dht_client",
        ]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building the examples failed");
    });
    profile_dir.join("examples").join(name)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client(maddr: &str, args: &[&str]) -> std::process::Output {
    Command::new(example("dht_client"))
        .args(args)
        .arg("--initial-peers")
        .arg(maddr)
        .output()
        .expect("dht_client runs")
}

#[test]
fn node_and_client_processes() {
    let mut node = KillOnDrop(
        Command::new(example("dht_node"))
            .args(["--refresh-period", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dht_node starts"),
    );
    let stdout = node.0.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a first line").expect("readable");
    let prefix = "To connect other peers to this one, use --initial-peers ";
    assert!(first.starts_with(prefix), "{first}");
    let maddr = first[prefix.len()..]
        .split(' ')
        .next()
        .expect("an address")
        .to_string();
    assert!(maddr.contains("/p2p/"), "{maddr}");

    let stored = client(&maddr, &["store", "greeting", "hello", "--ttl", "600"]);
    assert!(
        stored.status.success(),
        "{}",
        String::from_utf8_lossy(&stored.stderr)
    );
    let got = client(&maddr, &["get", "greeting", "--latest"]);
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    let out = String::from_utf8_lossy(&got.stdout);
    assert!(out.contains("\"hello\""), "{out}");
    assert!(out.contains("expiration"), "{out}");

    let missing = client(&maddr, &["get", "no-such-key"]);
    assert_eq!(missing.status.code(), Some(1));

    // The node reports its state every refresh period.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut saw_status = false;
    for line in lines.by_ref() {
        let line = line.expect("readable");
        if line.contains("keys in local storage") {
            saw_status = true;
            break;
        }
        assert!(Instant::now() < deadline, "no status line");
    }
    assert!(saw_status);
}
