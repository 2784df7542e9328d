//! Signature checks are the costly part of a store (an Ed25519 verification per record; a 4 MiB
//! request holds about 24,000). Two attacks on them:
//! - a peer whose quota allows 10 records sends 1,000: the victim must refuse 990 on the quota
//!   before it validates any of them;
//! - peers within their quotas send stores of many slow-to-validate records at once: the
//!   validation must not run on the async workers, so the victim keeps answering pings.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use p2p_servicer::dht::messages::{PingRequest, StoreRequest};
use p2p_servicer::dht::{DhtRecord, Limits, RecordValidator, Rejection, Validators, get_dht_time};

use crate::common::{
    PATIENCE, anonymous, attacker, config, honest_near, honest_round, node, regular, stub,
};

/// Counts the records it validates, taking `cost` for each, and accepts them all.
struct Costly {
    validated: AtomicUsize,
    cost: Duration,
}

impl RecordValidator for Costly {
    fn validate(&self, _record: &DhtRecord) -> bool {
        self.validated.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(self.cost);
        true
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn costly(cost: Duration) -> Arc<Costly> {
    Arc::new(Costly {
        validated: AtomicUsize::new(0),
        cost,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_come_before_validation() {
    const QUOTA: usize = 10;
    const SENT: usize = 1000;
    let validator = costly(Duration::ZERO);
    let victim = node(
        config(Limits::default().with_max_records_per_peer(QUOTA))
            .with_record_validators(Validators(vec![validator.clone()])),
    )
    .await;
    let victim_peer = victim.p2p().peer_id();
    let attacker = attacker(&victim).await;
    let expiration = get_dht_time() + 600.0;
    let items = (0..SENT)
        .map(|i| regular(&format!("over quota {i}"), "value", expiration))
        .collect();
    let answer = stub(&attacker, victim_peer, PATIENCE)
        .rpc_store(StoreRequest {
            peer: anonymous(),
            items,
        })
        .await
        .expect("the victim answers the store");
    let stored = answer.results.iter().filter(|r| r.is_ok()).count();
    let over_quota = answer
        .results
        .iter()
        .filter(|r| matches!(r, Err(Rejection::PeerQuotaExceeded)))
        .count();
    let validated = validator.validated.load(Ordering::Relaxed);
    eprintln!("{SENT} records past a quota of {QUOTA}: {stored} stored, {validated} validated");
    assert_eq!(stored, QUOTA, "records stored");
    assert_eq!(over_quota, SENT - QUOTA, "records refused on the quota");
    assert!(
        validated <= QUOTA,
        "the victim validated {validated} records of a peer whose quota is {QUOTA}"
    );
    attacker.shutdown().await;
    victim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_leaves_the_workers_free() {
    const STORES: usize = 4;
    const RECORDS: usize = 500;
    const COST: Duration = Duration::from_millis(4);
    // Each store takes 2 s of validation; pings are answered in a few ms.
    const MAX_PING: Duration = Duration::from_millis(1000);
    let validator = costly(COST);
    let victim =
        node(config(Limits::default()).with_record_validators(Validators(vec![validator.clone()])))
            .await;
    let victim_peer = victim.p2p().peer_id();
    let honest = honest_near(&victim, config(Limits::default())).await;
    let mut attackers = Vec::new();
    for _ in 0..STORES {
        attackers.push(attacker(&victim).await);
    }
    let expiration = get_dht_time() + 600.0;
    let stores: Vec<_> = attackers
        .iter()
        .enumerate()
        .map(|(a, attacker)| {
            let stub = stub(attacker, victim_peer, 4 * PATIENCE);
            let items = (0..RECORDS)
                .map(|i| regular(&format!("slow {a} {i}"), "value", expiration))
                .collect();
            tokio::spawn(async move {
                stub.rpc_store(StoreRequest {
                    peer: anonymous(),
                    items,
                })
                .await
            })
        })
        .collect();
    // Once the validations have started, time pings from a peer of its own.
    let started = Instant::now();
    while validator.validated.load(Ordering::Relaxed) == 0 && started.elapsed() < PATIENCE {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pinger = stub(honest.p2p(), victim_peer, PATIENCE);
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let t = Instant::now();
        pinger
            .rpc_ping(PingRequest {
                peer: anonymous(),
                validate: false,
            })
            .await
            .expect("the victim answers a ping");
        slowest = slowest.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let validating = validator.validated.load(Ordering::Relaxed) < STORES * RECORDS;
    for store in stores {
        let answer = store.await.unwrap().expect("the victim answers the store");
        assert!(
            answer.results.iter().all(Result::is_ok),
            "stores within quotas"
        );
    }
    eprintln!(
        "{STORES} stores of {RECORDS} records at {COST:?} each: slowest ping {slowest:?} \
         (still validating when the pings ended: {validating})"
    );
    honest_round(honest.protocol(), victim_peer, "after the stores").await;
    for attacker in attackers {
        attacker.shutdown().await;
    }
    honest.shutdown().await;
    victim.shutdown().await;
    assert!(
        slowest < MAX_PING,
        "a ping took {slowest:?} while stores were validated (at most {MAX_PING:?})"
    );
    assert!(
        validating,
        "the stores were validated before the pings ended: the test measured nothing"
    );
}
