//! Connection flood: many fresh identities connect to the victim at once.
//!
//! Secure: the victim holds at most its configured number of inbound connections (the others
//! are refused at the handshake), and a peer connected before the flood keeps being served.
//! (Loopback is not counted per IP, so this test exercises the total; the per-IP count is
//! unit-tested in the runtime's `transport::ip_limits`.)

use std::time::{Duration, Instant};

use p2p_servicer::dht::{DhtNode, DhtValue, get_dht_time};
use p2p_servicer::runtime::{P2P, P2PConfig};

use crate::common::PATIENCE;
use crate::wire_common::native_dht;

const MAX_INBOUND: u32 = 8;
const ATTACKERS: usize = 24;

/// Connections stay open while idle for this long, so that only the limits close them.
const IDLE: Duration = Duration::from_secs(600);

/// How many connections the victim holds and how many attackers still see theirs open.
async fn counts(victim: &DhtNode, attackers: &[P2P]) -> (usize, usize) {
    let victim_peer = victim.p2p().peer_id();
    let inbound = victim.p2p().connected_peers().await.unwrap().len();
    let mut kept = 0;
    for attacker in attackers {
        if attacker
            .connected_peers()
            .await
            .unwrap()
            .contains(&victim_peer)
        {
            kept += 1;
        }
    }
    (inbound, kept)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_flood() {
    let victim = DhtNode::create(native_dht(
        P2PConfig::default()
            .with_idle_connection_timeout(IDLE)
            .with_max_inbound_connections(MAX_INBOUND),
        Vec::new(),
    ))
    .await
    .unwrap();
    let honest = DhtNode::create(native_dht(
        P2PConfig::default().with_idle_connection_timeout(IDLE),
        victim.p2p().visible_maddrs(),
    ))
    .await
    .unwrap();
    assert!(
        honest
            .store("before", &1u32, get_dht_time() + 60.0, None)
            .await
            .unwrap()
    );

    let mut attackers = Vec::new();
    for _ in 0..ATTACKERS {
        let attacker = P2P::create(P2PConfig::default().with_idle_connection_timeout(IDLE))
            .await
            .unwrap();
        let addr = victim.p2p().visible_maddrs()[0].clone();
        // The dialer sees its handshake complete before the victim decides; what counts is
        // whether the connection survives that decision.
        let _ = tokio::time::timeout(PATIENCE, attacker.connect(addr)).await;
        attackers.push(attacker);
    }
    // Refused connections take a moment to be torn down on both sides: wait until the counts
    // stop changing, then judge them once.
    let deadline = Instant::now() + PATIENCE;
    let (mut last, mut since) = (counts(&victim, &attackers).await, Instant::now());
    while since.elapsed() < Duration::from_secs(2) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = counts(&victim, &attackers).await;
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    let (inbound, kept) = last;
    eprintln!(
        "connection flood: {kept} of {ATTACKERS} fresh identities kept a connection, the victim \
         holds {inbound} (limit {MAX_INBOUND})"
    );
    assert!(
        inbound <= MAX_INBOUND as usize,
        "the victim holds {inbound} connections, past its limit of {MAX_INBOUND}"
    );
    // The honest peer holds one of the victim's inbound slots.
    assert!(
        kept < MAX_INBOUND as usize,
        "{kept} of {ATTACKERS} attackers kept a connection past a limit of {MAX_INBOUND}"
    );

    // The honest peer, connected before the flood, is still served.
    let found = honest.get::<u32>("before", true).await.unwrap();
    assert_eq!(found.map(|v| v.value), Some(DhtValue::Regular(1)));
    for attacker in attackers {
        attacker.shutdown().await;
    }
    honest.shutdown().await;
    victim.shutdown().await;
}
