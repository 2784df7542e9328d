//! Real NATs on one machine, for the root package's tests: network namespaces joined by veth
//! pairs, a "public" bridge (10.77.0.0/24) with hosts on it, and routers that masquerade (iptables
//! MASQUERADE) for one host each behind them (192.168.77+N.0/24). Programs run inside with
//! `ip netns exec`. Everything is made inside namespaces this harness creates, named with the
//! test process's id, and deleted on drop (also when the test panics).
//!
//! Needs root and the `ip` (iproute2) and `iptables` programs; without them [`Net::new`] panics
//! saying what is missing (`.ci/run` installs both and runs as root).

#![allow(dead_code)] // Each test binary uses its part.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The public bridge's subnet: hosts get 10.77.0.10 and up, routers 10.77.0.100 and up.
const PUBLIC_PREFIX: [u8; 3] = [10, 77, 0];

/// Nets made by this process, so that two in one test binary get different names.
static NETS: AtomicUsize = AtomicUsize::new(0);

/// A set of namespaces: the bridge, its hosts and routers, deleted on drop.
pub struct Net {
    /// Every namespace's name starts with this.
    prefix: String,
    /// The bridge namespace.
    bridge: String,
    /// Every namespace created, in order.
    namespaces: Vec<String>,
    public_hosts: u8,
    routers: u8,
}

/// A host: a namespace with one interface (`eth0`) and its address.
#[derive(Debug, Clone)]
pub struct Host {
    /// The namespace's name.
    pub ns: String,
    /// The host's own address (a private one, behind a router).
    pub ip: Ipv4Addr,
    /// The address others see it at: `ip` on the bridge, the router's outer address behind one.
    pub public_ip: Ipv4Addr,
}

impl Host {
    /// `program` to be run inside this host's namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns]).arg(program);
        command
    }
}

/// What this machine lacks for namespaces and NAT, or `None` when it has everything.
pub fn missing() -> Option<String> {
    let mut missing = Vec::new();
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status
                .lines()
                .find(|line| line.starts_with("Uid:"))?
                .to_string();
            Some(line.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        missing.push("root (run the test as root)".to_string());
    }
    for (program, args, package) in [
        ("ip", &["-V"][..], "iproute2"),
        ("iptables", &["--version"][..], "iptables"),
    ] {
        let found = Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|out| out.status.success());
        if !found {
            missing.push(format!(
                "the `{program}` program (apt-get install -y {package})"
            ));
        }
    }
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// Runs `ip args...`, panicking with its stderr if it fails.
fn ip(args: &[&str]) {
    run("ip", args);
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Deletes the namespaces named `prefix*` (leftovers of a killed process with this one's id).
fn delete_all(prefix: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(name) = line.split_whitespace().next()
            && name.starts_with(prefix)
        {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

impl Net {
    /// A public bridge in a namespace of its own, with no hosts yet. Panics, naming what is
    /// missing, without root or without `ip` and `iptables`.
    pub fn new(tag: &str) -> Net {
        if let Some(missing) = missing() {
            panic!(
                "this test makes network namespaces and NATs and needs {missing}; \
                 .ci/run installs iproute2 and iptables and runs as root"
            );
        }
        let n = NETS.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("p2pt-{}-{n}-{tag}-", std::process::id());
        delete_all(&prefix);
        let mut net = Net {
            bridge: format!("{prefix}br"),
            prefix,
            namespaces: Vec::new(),
            public_hosts: 0,
            routers: 0,
        };
        let bridge = net.bridge.clone();
        net.add_namespace(&bridge);
        ip(&["-n", &bridge, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &bridge, "link", "set", "br0", "up"]);
        net
    }

    fn add_namespace(&mut self, name: &str) {
        ip(&["netns", "add", name]);
        self.namespaces.push(name.to_string());
        ip(&["-n", name, "link", "set", "lo", "up"]);
    }

    /// A veth pair from the bridge (port `port`, attached to `br0`) to `eth` in `ns`.
    fn attach_to_bridge(&self, port: &str, ns: &str, eth: &str, ip_cidr: &str) {
        let bridge = &self.bridge;
        ip(&[
            "-n", bridge, "link", "add", port, "type", "veth", "peer", "name", eth, "netns", ns,
        ]);
        ip(&["-n", bridge, "link", "set", port, "master", "br0", "up"]);
        ip(&["-n", ns, "addr", "add", ip_cidr, "dev", eth]);
        ip(&["-n", ns, "link", "set", eth, "up"]);
    }

    /// A host on the public bridge (10.77.0.10, .11, ...).
    pub fn public_host(&mut self) -> Host {
        let i = self.public_hosts;
        self.public_hosts += 1;
        let ns = format!("{}pub{i}", self.prefix);
        self.add_namespace(&ns);
        let addr = Ipv4Addr::from([PUBLIC_PREFIX[0], PUBLIC_PREFIX[1], PUBLIC_PREFIX[2], 10 + i]);
        self.attach_to_bridge(&format!("p{i}"), &ns, "eth0", &format!("{addr}/24"));
        Host {
            ns,
            ip: addr,
            public_ip: addr,
        }
    }

    /// A router on the bridge (10.77.0.100, .101, ...) that masquerades for one host behind it
    /// (192.168.77.2, 192.168.78.2, ...), its default route; the bridge cannot reach the host.
    pub fn host_behind_nat(&mut self) -> Host {
        let i = self.routers;
        self.routers += 1;
        let router = format!("{}nat{i}", self.prefix);
        let ns = format!("{}priv{i}", self.prefix);
        self.add_namespace(&router);
        self.add_namespace(&ns);
        let outer = Ipv4Addr::from([
            PUBLIC_PREFIX[0],
            PUBLIC_PREFIX[1],
            PUBLIC_PREFIX[2],
            100 + i,
        ]);
        self.attach_to_bridge(&format!("r{i}"), &router, "out0", &format!("{outer}/24"));
        let inner = [192, 168, 77 + i];
        let gateway = format!("{}.{}.{}.1", inner[0], inner[1], inner[2]);
        let addr = Ipv4Addr::from([inner[0], inner[1], inner[2], 2]);
        ip(&[
            "-n", &router, "link", "add", "in0", "type", "veth", "peer", "name", "eth0", "netns",
            &ns,
        ]);
        ip(&[
            "-n",
            &router,
            "addr",
            "add",
            &format!("{gateway}/24"),
            "dev",
            "in0",
        ]);
        ip(&["-n", &router, "link", "set", "in0", "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &ns, "route", "add", "default", "via", &gateway]);
        run(
            "ip",
            &[
                "netns",
                "exec",
                &router,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ],
        );
        run(
            "ip",
            &[
                "netns",
                "exec",
                &router,
                "iptables",
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-o",
                "out0",
                "-j",
                "MASQUERADE",
            ],
        );
        Host {
            ns,
            ip: addr,
            public_ip: outer,
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        delete_all(&self.prefix);
    }
}
