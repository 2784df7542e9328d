//! AutoNAT through a real NAT (issue 16's test 3): `p2p-dht` nodes in network namespaces (see
//! `tests/netns`). B and C are on a public bridge, A is behind a masquerading router; B learns it
//! is public, with its bridge address confirmed, and A learns it is private, announcing nothing of
//! its router's. Needs root, `ip` and `iptables`: it fails saying so without them.

mod netns;
mod programs;

use std::time::{Duration, Instant};

use netns::{Host, Net};
use programs::Running;

/// Generous: the machine may be a loaded 2-core one, and AutoNAT probes every 5 s.
const PATIENCE: Duration = Duration::from_secs(120);

/// Where every node listens, inside its own namespace.
const PORT: u16 = 4001;

const ADDRESS_LINE: &str = "To connect other peers to this one, use --initial-peers ";

/// A `p2p-dht node` inside a namespace (see `tests/programs`).
struct Node {
    program: Running,
    started: Instant,
}

impl std::ops::Deref for Node {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.program
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut Running {
        &mut self.program
    }
}

impl Node {
    fn start(name: &'static str, host: &Host, initial_peers: &[String]) -> Node {
        let mut command = host.command(env!("CARGO_BIN_EXE_p2p-dht"));
        command
            .args(["node", "--host_maddrs", &format!("/ip4/0.0.0.0/tcp/{PORT}")])
            .env("RUST_LOG", "info");
        if !initial_peers.is_empty() {
            command.arg("--initial_peers").args(initial_peers);
        }
        Node {
            program: Running::spawn(format!("node {name}"), &mut command, PATIENCE),
            started: Instant::now(),
        }
    }

    /// The node's address on `ip`, from the first address line that has it.
    fn address_on(&mut self, ip: std::net::Ipv4Addr) -> String {
        let prefix = format!("/ip4/{ip}/tcp/{PORT}/p2p/");
        // A node on 0.0.0.0 may print its first line before it has seen every interface; it
        // prints the line again when its addresses change.
        let line = self.wait_for("address line", |line| {
            line.starts_with(ADDRESS_LINE) && line.contains(&prefix)
        });
        line[ADDRESS_LINE.len()..]
            .split(' ')
            .find(|addr| addr.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {line}"))
            .to_string()
    }

    /// Every address this node printed for others to join with.
    fn printed_addresses(&self) -> Vec<&str> {
        self.seen
            .iter()
            .filter_map(|line| line.strip_prefix(ADDRESS_LINE))
            .flat_map(|addrs| addrs.split(' '))
            .collect()
    }
}

#[test]
fn autonat_finds_the_public_node_public_and_the_natted_one_private() {
    let mut net = Net::new("autonat");
    let b_host = net.public_host();
    let c_host = net.public_host();
    let a_host = net.host_behind_nat();

    let mut c = Node::start("C", &c_host, &[]);
    let c_addr = c.address_on(c_host.ip);
    let mut b = Node::start("B", &b_host, std::slice::from_ref(&c_addr));
    let b_addr = b.address_on(b_host.ip);
    let mut a = Node::start("A", &a_host, &[b_addr.clone(), c_addr]);
    a.address_on(a_host.ip);

    // B dialled C, whose identify saw B at its bridge address and whose AutoNAT server dialled it
    // back.
    let b_bridge = format!("/ip4/{}/tcp/{PORT}", b_host.ip);
    let line = b.wait_for("public reachability", |line| {
        line.contains("reachability=public") && line.contains(&b_bridge)
    });
    let b_public = b.started.elapsed();
    let external = line
        .split("external_addresses=")
        .nth(1)
        .expect("external addresses logged");
    assert_eq!(
        external.split_whitespace().next(),
        Some(b_bridge.as_str()),
        "{line}"
    );
    // The confirmed address is announced first.
    let b_first = b.wait_for("the confirmed address first in the address line", |line| {
        line.strip_prefix(ADDRESS_LINE)
            .is_some_and(|addrs| addrs.starts_with(&b_addr))
    });
    assert!(b_first.contains(&b_addr));

    // A's router's address was observed, and its servers could not dial it back.
    a.wait_for("private reachability", |line| {
        line.contains("reachability=private")
    });
    let a_private = a.started.elapsed();
    a.drain();
    let router = format!("/ip4/{}/", a_host.public_ip);
    assert!(
        !a.seen
            .iter()
            .any(|line| line.contains("reachability=public")),
        "A found public:\n{}",
        a.seen.join("\n")
    );
    assert!(
        !a.printed_addresses()
            .iter()
            .any(|addr| addr.starts_with(&router)),
        "A announced its router's address:\n{}",
        a.seen.join("\n")
    );
    eprintln!("B confirmed public after {b_public:?}, A found private after {a_private:?}");
}
