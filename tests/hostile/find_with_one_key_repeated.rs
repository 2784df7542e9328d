//! One key repeated 1,024 times in a find request, 16 such requests at once: the answer must
//! stay within the message limit and the victim's memory bounded, and the calls must succeed.

use p2p_servicer::dht::messages::{FindRequest, FoundValue, StoreItem, StoreValue};
use p2p_servicer::dht::{DhtId, DhtValue, Limits, encode_value, get_dht_time, testing};
use serde_bytes::ByteBuf;

use crate::common::{
    MemoryGuard, PATIENCE, anonymous, attacker, config, honest_near, honest_round, node, peak_rss,
    stub,
};

const VALUE_BYTES: usize = 900 * 1024;
const REPEATS: usize = 1024;
const CALLS: usize = 16;
const MAX_ANSWER_VALUE_BYTES: usize = 4 << 20;
const MAX_PEAK_GROWTH: u64 = 256 << 20;
/// Past this resident set the test process aborts rather than exhaust the shared machine.
const MEMORY_GUARD: u64 = 8 << 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_with_one_key_repeated() {
    let victim = node(config(Limits::default())).await;
    let victim_peer = victim.p2p().peer_id();
    let honest = honest_near(&victim, config(Limits::default())).await;

    let key = "a value of 900 KiB";
    let key_id = DhtId::generate(key);
    let value = vec![0x5a; VALUE_BYTES];
    let encoded = encode_value(&ByteBuf::from(value.clone())).unwrap();
    let stored = testing::store_locally(
        victim.protocol(),
        vec![StoreItem {
            key: key_id,
            value: StoreValue::Regular(encoded.clone()),
            expiration_time: get_dht_time() + 600.0,
            in_cache: false,
        }],
    );
    assert_eq!(stored, vec![Ok(())]);

    let attacker = attacker(&victim).await;
    let stub = stub(&attacker, victim_peer, 4 * PATIENCE);

    let guard = MemoryGuard::start(MEMORY_GUARD);
    let peak_before = peak_rss();
    let honest_during = {
        let honest = honest.protocol().clone();
        tokio::spawn(async move { honest_round(&honest, victim_peer, "during the finds").await })
    };
    let calls = (0..CALLS).map(|_| {
        let stub = stub.clone();
        async move {
            stub.rpc_find(FindRequest {
                peer: anonymous(),
                keys: vec![key_id; REPEATS],
            })
            .await
        }
    });
    let answers = futures::future::join_all(calls).await;
    let peak_after = peak_rss();
    drop(guard);

    let mut problems = Vec::new();
    let failed: Vec<String> = answers
        .iter()
        .filter_map(|a| a.as_ref().err().map(ToString::to_string))
        .collect();
    if let Some(first) = failed.first() {
        problems.push(format!(
            "{} of {CALLS} find calls ({REPEATS} times one key) failed, the first with: {first}",
            failed.len()
        ));
    }
    for (i, answer) in answers.into_iter().enumerate() {
        let Ok(answer) = answer else { continue };
        if answer.results.len() != REPEATS {
            problems.push(format!("call {i}: {} results", answer.results.len()));
        }
        let mut value_bytes = 0;
        let mut found = 0;
        for result in &answer.results {
            match &result.value {
                FoundValue::NotFound => {}
                FoundValue::Regular { value, .. } => {
                    value_bytes += value.len();
                    if *value == encoded {
                        found += 1;
                    }
                }
                FoundValue::Dictionary { entries, .. } => {
                    value_bytes += entries.iter().map(|e| e.value.len()).sum::<usize>();
                }
            }
        }
        if value_bytes > MAX_ANSWER_VALUE_BYTES {
            problems.push(format!(
                "call {i}: {value_bytes} bytes of values in one answer (at most \
                 {MAX_ANSWER_VALUE_BYTES})"
            ));
        }
        if found == 0 {
            problems.push(format!("call {i}: the value is in no result"));
        }
    }
    let growth = peak_after.saturating_sub(peak_before);
    println!(
        "peak resident set: {} MiB before, {} MiB after",
        peak_before >> 20,
        peak_after >> 20
    );
    if growth >= MAX_PEAK_GROWTH {
        problems.push(format!(
            "the peak resident set grew by {} MiB (less than {} MiB allowed)",
            growth >> 20,
            MAX_PEAK_GROWTH >> 20
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("; "));

    honest_during.await.expect("honest round during the finds");
    honest_round(honest.protocol(), victim_peer, "after the finds").await;
    let got = tokio::time::timeout(PATIENCE, honest.get::<ByteBuf>(key, true))
        .await
        .expect("honest get of the big value in time")
        .expect("honest get of the big value");
    match got.map(|v| v.value) {
        Some(DhtValue::Regular(bytes)) => assert!(bytes.as_ref() == value, "wrong value"),
        other => panic!(
            "honest get of the big value: {:?}",
            other.map(|_| "not a regular value")
        ),
    }
    attacker.shutdown().await;
    honest.shutdown().await;
    victim.shutdown().await;
}
