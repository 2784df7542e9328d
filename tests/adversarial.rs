//! A hostile peer attacks a DHT node while honest peers use it: malformed and oversized frames,
//! a caller that vanishes mid-call, bad signatures, expired records and a flood of stores. The
//! node answers each with a typed refusal and keeps serving the honest peers.

use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use p2p_servicer::dht::messages::{StoreItem, StoreValue};
use p2p_servicer::dht::{
    DhtConfig, DhtId, DhtNode, DhtProtocol, Key, Limits, ProtocolConfig, Rejection,
    SignatureValidator, Validators, get_dht_time,
};
use p2p_servicer::runtime::native::codec;
use p2p_servicer::runtime::native::frame::{CallHeader, FRAME_HEADER_LEN, FrameKind};
use p2p_servicer::runtime::{Keypair, P2P, P2PConfig, PeerId, RpcKind};

const PATIENCE: Duration = Duration::from_secs(30);

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn call_header(name: &str) -> Vec<u8> {
    let header = CallHeader {
        name: name.to_owned(),
        kind: RpcKind::UnaryUnary,
    };
    frame(FrameKind::Call as u8, &codec::encode(&header).unwrap())
}

/// Sends `bytes` on a fresh stream and returns everything the node answers before it closes it.
async fn send_raw(attacker: &P2P, victim: PeerId, bytes: &[u8]) -> Vec<u8> {
    let mut stream = attacker.open_raw_stream(victim).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream.flush().await.unwrap();
    let mut answer = Vec::new();
    // The node closes the stream after its error frame; an error reading is a reset, also fine.
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .expect("the node neither answered nor closed the stream");
    answer
}

fn item(key: &str, value: StoreValue, expiration_time: f64) -> StoreItem {
    StoreItem {
        key: DhtId::generate(key),
        value,
        expiration_time,
        in_cache: false,
    }
}

fn signing_config(keypair: Keypair, limits: Limits) -> (DhtConfig, Arc<SignatureValidator>) {
    let validator = Arc::new(SignatureValidator::new(keypair.clone()));
    let config = DhtConfig::default()
        .with_p2p(P2PConfig::default().with_keypair(keypair))
        .with_wait_timeout(PATIENCE)
        .with_limits(limits)
        .with_record_validators(Validators(vec![validator.clone()]));
    (config, validator)
}

/// Honest work against the victim: stores and finds through it, each of which must succeed.
async fn honest_rounds(honest: DhtNode, victim: PeerId, rounds: usize) {
    for round in 0..rounds {
        let key = format!("honest {round}");
        let stored = honest
            .protocol()
            .call_store_detailed(
                victim,
                vec![item(
                    &key,
                    StoreValue::Regular(vec![round as u8]),
                    get_dht_time() + 60.0,
                )],
            )
            .await;
        assert_eq!(stored, Some(vec![Ok(())]), "round {round}: store");
        let found = honest
            .protocol()
            .call_find(victim, vec![DhtId::generate(key.as_str())])
            .await
            .expect("find answered");
        assert!(
            found.values().all(|f| f.value.is_some()),
            "round {round}: find"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_peer_does_not_stop_honest_ones() {
    let limits = Limits::default()
        .with_max_records_per_peer(300)
        .with_max_value_size(64 * 1024);
    let (victim_config, _) = signing_config(Keypair::generate_ed25519(), limits.clone());
    let victim = DhtNode::create(victim_config).await.unwrap();
    let victim_peer = victim.p2p().peer_id();
    let (honest_config, honest_signer) = signing_config(Keypair::generate_ed25519(), limits);
    let honest = DhtNode::create(honest_config.with_initial_peers(victim.p2p().visible_maddrs()))
        .await
        .unwrap();

    let attacker =
        P2P::create(P2PConfig::default().with_initial_peers(victim.p2p().visible_maddrs()))
            .await
            .unwrap();
    let hostile = DhtProtocol::create(
        &attacker,
        DhtId::random(),
        ProtocolConfig::default()
            .with_wait_timeout(PATIENCE)
            .with_client_mode(true),
    )
    .unwrap();

    let honest_work = tokio::spawn(honest_rounds(honest.clone(), victim_peer, 40));

    // Malformed and oversized frames: each gets an error frame, then the stream is closed.
    let store_call = call_header("DHTProtocol.rpc_store");
    let bad_frames: Vec<(&str, Vec<u8>)> = vec![
        ("unknown frame kind", vec![0xff; 16]),
        ("call header that does not decode", frame(0, &[0xfe; 3])),
        ("message before any call header", frame(1, &[0])),
        (
            "frame length beyond the limit",
            vec![0, 0x7f, 0xff, 0xff, 0xff],
        ),
        (
            "call to an unknown handler",
            call_header("DHTProtocol.rpc_nope"),
        ),
        (
            "store request that does not decode",
            [store_call.clone(), frame(1, &[0xde, 0xad, 0xbe, 0xef])].concat(),
        ),
        (
            "message larger than the limit announced after a valid call",
            [store_call.clone(), vec![1, 0xff, 0xff, 0xff, 0xff]].concat(),
        ),
    ];
    for (what, bytes) in &bad_frames {
        let answer = send_raw(&attacker, victim_peer, bytes).await;
        assert!(
            answer.len() >= FRAME_HEADER_LEN && answer[0] == FrameKind::Error as u8,
            "{what}: answered {answer:?}"
        );
        println!(
            "{what}: error frame of {} bytes, stream closed",
            answer.len()
        );
    }

    // A caller that vanishes mid-call: half a frame, then the stream is dropped.
    {
        let mut stream = attacker.open_raw_stream(victim_peer).await.unwrap();
        stream
            .write_all(&store_call[..store_call.len() / 2])
            .await
            .unwrap();
        stream.flush().await.unwrap();
    }

    // Bad signatures on a record the honest peer owns.
    let protected =
        Key::from([&b"subkey"[..], honest_signer.local_public_key()].concat()).to_msgpack();
    let exp = get_dht_time() + 60.0;
    let forged = |value: &[u8]| {
        item(
            "owned",
            StoreValue::Subkey {
                subkey: protected.clone(),
                value: value.to_vec(),
            },
            exp,
        )
    };
    let attacker_signer = SignatureValidator::new(Keypair::generate_ed25519());
    let signed_by_attacker = {
        use p2p_servicer::dht::{DhtRecord, RecordValidator};
        // The attacker's own marker in the key makes its validator sign.
        let record = DhtRecord {
            key: DhtId::generate("owned").to_bytes().to_vec(),
            subkey: [&protected[..], attacker_signer.local_public_key()].concat(),
            value: b"\xa4fake".to_vec(),
            expiration_time: exp,
        };
        attacker_signer.sign_value(&record)
    };
    let answers = hostile
        .call_store_detailed(
            victim_peer,
            vec![
                forged(b"\xa4fake"),
                forged(b"\xa4fake[signature:AAAA]"),
                forged(&signed_by_attacker),
            ],
        )
        .await
        .unwrap();
    assert_eq!(answers, vec![Err(Rejection::Invalid); 3]);
    println!("unsigned, garbage-signed and attacker-signed owned records: {answers:?}");

    // Expired records.
    let expired = item("stale", StoreValue::Regular(vec![1]), get_dht_time() - 10.0);
    let answers = hostile
        .call_store_detailed(victim_peer, vec![expired])
        .await
        .unwrap();
    assert_eq!(answers, vec![Err(Rejection::Expired)]);
    println!("expired record: {answers:?}");

    // A value over the size limit.
    let big = item("big", StoreValue::Regular(vec![0; 64 * 1024 + 1]), exp);
    let answers = hostile
        .call_store_detailed(victim_peer, vec![big])
        .await
        .unwrap();
    assert_eq!(answers, vec![Err(Rejection::ValueTooLarge)]);
    println!("oversized value: {answers:?}");

    // A flood of stores: 20 concurrent requests of 100 fresh keys each.
    let floods = (0..20).map(|round| {
        let hostile = hostile.clone();
        async move {
            let items = (0..100)
                .map(|i| {
                    item(
                        &format!("flood {round} {i}"),
                        StoreValue::Regular(vec![0; 100]),
                        exp,
                    )
                })
                .collect();
            hostile
                .call_store_detailed(victim_peer, items)
                .await
                .unwrap()
        }
    });
    let answers: Vec<Result<(), Rejection>> = futures::future::join_all(floods)
        .await
        .into_iter()
        .flatten()
        .collect();
    let stored = answers.iter().filter(|a| a.is_ok()).count();
    let refused = answers
        .iter()
        .filter(|a| **a == Err(Rejection::PeerQuotaExceeded))
        .count();
    assert_eq!((stored, refused), (300, 1700));
    println!("flood of 2000 records: {stored} stored, {refused} refused over quota");
    assert_eq!(
        victim.protocol().records_written_by(&attacker.peer_id()),
        300
    );

    honest_work.await.unwrap();

    // The victim still serves everyone; the honest owner still writes its record.
    let owned_subkey = Key::from([&b"subkey"[..], honest_signer.local_public_key()].concat());
    assert!(
        honest
            .store(
                "owned",
                &"true value",
                get_dht_time() + 60.0,
                Some(owned_subkey)
            )
            .await
            .unwrap()
    );
    let got = victim.get::<String>("owned", true).await.unwrap().unwrap();
    assert!(matches!(got.value, p2p_servicer::dht::DhtValue::Dictionary(d) if d.len() == 1));
    let found = hostile
        .call_find(victim_peer, vec![DhtId::generate("honest 0")])
        .await
        .unwrap();
    assert!(found.values().all(|f| f.value.is_some()));

    attacker.shutdown().await;
    honest.shutdown().await;
    victim.shutdown().await;
}
