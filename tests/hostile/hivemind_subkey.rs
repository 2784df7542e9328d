//! c) A hivemind `rpc_store` of dictionary subkeys whose bytes are not exactly one msgpack value
//! (`c1`, which msgpack never uses; a valid key followed by a stray byte). A subkey travels raw
//! inside the msgpack of a dictionary in hivemind's find answers (translate.rs,
//! dictionary.rs), so once stored it breaks every later answer for its key.
//!
//! Secure: those items are refused (`false`), an honest node's `get` of the keys through the
//! victim works, and the honest node keeps the victim in its routing table, unbanned.

use p2p_servicer::dht::hivemind_proto::StoreRequest;
use p2p_servicer::dht::messages::{StoreItem, StoreValue};
use p2p_servicer::dht::{
    DhtId, DhtNode, DhtValue, HivemindDhtProtocol, Key, encode_value, get_dht_time,
};
use p2p_servicer::runtime::{P2P, P2PConfig, WireMode};

use crate::common::PATIENCE;
use crate::wire_common::hivemind_dht;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hivemind_bad_subkey() {
    let victim = DhtNode::create(hivemind_dht(Vec::new())).await.unwrap();
    let victim_peer = victim.p2p().peer_id();
    let attacker = P2P::create(
        P2PConfig::default()
            .with_wire_mode(WireMode::Hivemind)
            .with_initial_peers(victim.p2p().visible_maddrs())
            .with_require_initial_peers(true),
    )
    .await
    .unwrap();
    let stub = HivemindDhtProtocol::get_stub(&attacker, victim_peer).with_deadline(PATIENCE);

    let good = Key::from("good").to_msgpack();
    let poisoned = [
        ("not msgpack", vec![0xc1]),
        (
            "trailing byte",
            [Key::from("a").to_msgpack(), vec![0x00]].concat(),
        ),
    ];
    let exp = get_dht_time() + 300.0;
    let mut request = StoreRequest::default();
    for (key, bad) in &poisoned {
        // A valid subkey first, then the poisoned one, under the same key.
        for subkey in [good.clone(), bad.clone()] {
            request.keys.push(DhtId::generate(*key).to_bytes().to_vec());
            request.subkeys.push(subkey);
            request.values.push(encode_value("value").unwrap());
            request.expiration_time.push(exp);
            request.in_cache.push(false);
        }
    }
    let stored = stub
        .rpc_store(request)
        .await
        .expect("a store is answered item by item")
        .store_ok;
    eprintln!("hivemind store of [good, 0xc1] and [good, \"a\"+0x00] subkeys: {stored:?}");

    // An honest hivemind node that knows only the victim.
    let honest = DhtNode::create(hivemind_dht(victim.p2p().visible_maddrs()))
        .await
        .unwrap();
    let mut failures = Vec::new();
    if stored != [true, false, true, false] {
        failures.push(format!(
            "store_ok {stored:?}, want [true, false, true, false]: poisoned subkeys accepted"
        ));
    }
    for (key, _) in &poisoned {
        match honest.get::<String>(*key, true).await {
            Ok(Some(found)) => match found.value {
                DhtValue::Dictionary(entries)
                    if entries.len() == 1
                        && entries.get(&good).map(|v| v.value.as_str()) == Some("value") => {}
                other => failures.push(format!("get {key:?}: {other:?}")),
            },
            other => failures.push(format!(
                "honest get of {key:?} through the victim: {other:?} (want the good subkey)"
            )),
        }
    }
    if !honest.protocol().knows_node(&victim.node_id()) {
        failures.push("the honest node dropped the victim from its routing table".into());
    }
    if honest.banned_peers().contains(&victim_peer) {
        failures.push("the honest node blacklisted the victim".into());
    }

    // The victim still serves the honest node: a store and a find of another key, sent to it.
    let after = DhtId::generate("after the attack");
    let stored_after = honest
        .protocol()
        .call_store(
            victim_peer,
            vec![StoreItem {
                key: after,
                value: StoreValue::Regular(encode_value("fine").unwrap()),
                expiration_time: get_dht_time() + 300.0,
                in_cache: false,
            }],
        )
        .await;
    let found_after = honest.protocol().call_find(victim_peer, vec![after]).await;
    if stored_after != Some(vec![true])
        || !found_after.is_some_and(|found| found.values().all(|f| f.value.is_some()))
    {
        failures.push(format!(
            "the victim stopped serving the honest node: store {stored_after:?}"
        ));
    }

    attacker.shutdown().await;
    honest.shutdown().await;
    victim.shutdown().await;
    assert!(failures.is_empty(), "{failures:#?}");
}
