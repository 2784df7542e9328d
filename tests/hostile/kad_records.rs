//! d) A hivemind-mode node runs libp2p-kad in server mode for peer routing only. A plain
//! libp2p-kad swarm sends it PUT_VALUE (`put_record_to` with the victim as the only peer) and
//! ADD_PROVIDER (`start_providing`); a second, fresh swarm then asks it with GET_VALUE and
//! GET_PROVIDERS. Secure: nothing was stored, both come back empty, and the victim still serves
//! an honest DHT node.

use std::time::Duration;

use futures::StreamExt;
use libp2p::kad::store::MemoryStore;
use libp2p::kad::{self, GetProvidersOk, GetRecordOk, QueryId, QueryResult, QueryStats, Quorum};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, noise, tcp, yamux};
use p2p_servicer::dht::messages::{StoreItem, StoreValue};
use p2p_servicer::dht::{DhtId, DhtNode, encode_value, get_dht_time};

use crate::common::PATIENCE;
use crate::wire_common::{hivemind_dht, without_p2p};

type Kad = kad::Behaviour<MemoryStore>;

/// A plain libp2p-kad node (client mode: the victim does not add it to its routing table, so
/// the prober's queries cannot reach the attacker's own store through the victim).
fn kad_swarm() -> Swarm<Kad> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| {
            let me = key.public().to_peer_id();
            let mut config = kad::Config::new(kad::PROTOCOL_NAME);
            config.set_query_timeout(PATIENCE);
            let mut kad = Kad::with_config(me, MemoryStore::new(me), config);
            kad.set_mode(Some(kad::Mode::Client));
            kad
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Drives `swarm` until query `id` finished; its results and statistics.
async fn run_query(swarm: &mut Swarm<Kad>, id: QueryId) -> (Vec<QueryResult>, QueryStats) {
    let mut results = Vec::new();
    let drive = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(kad::Event::OutboundQueryProgressed {
                    id: got,
                    result,
                    stats,
                    step,
                }) if got == id => {
                    results.push(result);
                    if step.last {
                        return stats;
                    }
                }
                SwarmEvent::NewListenAddr { address, .. } => {
                    swarm.add_external_address(address);
                }
                _ => {}
            }
        }
    };
    let stats = tokio::time::timeout(PATIENCE, drive)
        .await
        .expect("kad query did not finish");
    (results, stats)
}

/// A kad swarm that knows only `victim` at `addr`.
fn knowing(victim: PeerId, addr: &Multiaddr) -> Swarm<Kad> {
    let mut swarm = kad_swarm();
    swarm.behaviour_mut().add_address(&victim, addr.clone());
    swarm
}

/// What a PUT_VALUE and an ADD_PROVIDER to `target` left there, as fresh swarms see it.
struct Probe {
    put_acknowledged: bool,
    provide_acknowledged: bool,
    /// Who returned which record value to GET_VALUE.
    records: Vec<(Option<PeerId>, String)>,
    /// Providers GET_PROVIDERS returned.
    providers: Vec<PeerId>,
    /// Peers that answered GET_VALUE and GET_PROVIDERS.
    answered: (u32, u32),
}

/// The attack on `target` (at `addr`) by one kad swarm, then the probe of it by another.
async fn attack_and_probe(target: PeerId, addr: &Multiaddr, name: &str) -> Probe {
    let mut attacker = knowing(target, addr);
    attacker
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let record_key = kad::RecordKey::new(&format!("{name}: hostile record"));
    let provider_key = kad::RecordKey::new(&format!("{name}: hostile provider"));
    let mut record = kad::Record::new(record_key.clone(), b"planted value".to_vec());
    record.publisher = Some(*attacker.local_peer_id());
    let put = attacker
        .behaviour_mut()
        .put_record_to(record, std::iter::once(target), Quorum::One);
    let (put_results, _) = run_query(&mut attacker, put).await;
    let providing = attacker
        .behaviour_mut()
        .start_providing(provider_key.clone())
        .unwrap();
    let (provide_results, _) = run_query(&mut attacker, providing).await;
    // kad reports ADD_PROVIDER done once it is queued, not sent: keep the attacker running.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            attacker.select_next_some().await;
        }
    })
    .await;
    let attacker = tokio::spawn(async move {
        loop {
            attacker.select_next_some().await;
        }
    });

    // A fresh prober, with an empty store of its own, asks the target.
    let mut prober = knowing(target, addr);
    let get = prober.behaviour_mut().get_record(record_key);
    let (get_results, get_stats) = run_query(&mut prober, get).await;
    let records = get_results
        .iter()
        .filter_map(|r| match r {
            QueryResult::GetRecord(Ok(GetRecordOk::FoundRecord(found))) => Some((
                found.peer,
                String::from_utf8_lossy(&found.record.value).into_owned(),
            )),
            _ => None,
        })
        .collect();
    let get_providers = prober.behaviour_mut().get_providers(provider_key);
    let (provider_results, providers_stats) = run_query(&mut prober, get_providers).await;
    let providers = provider_results
        .iter()
        .flat_map(|r| match r {
            QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders { providers, .. })) => {
                providers.iter().copied().collect()
            }
            _ => Vec::new(),
        })
        .collect();
    attacker.abort();
    Probe {
        put_acknowledged: put_results
            .iter()
            .all(|r| matches!(r, QueryResult::PutRecord(Ok(_)))),
        provide_acknowledged: provide_results
            .iter()
            .all(|r| matches!(r, QueryResult::StartProviding(Ok(_)))),
        records,
        providers,
        answered: (get_stats.num_successes(), providers_stats.num_successes()),
    }
}

/// A plain libp2p-kad server that stores what it is sent, driven by its own task: the control
/// that shows the attack and the probe work.
async fn storing_kad_server() -> (PeerId, Multiaddr, tokio::task::JoinHandle<()>) {
    let mut server = kad_swarm();
    server.behaviour_mut().set_mode(Some(kad::Mode::Server));
    server
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = server.select_next_some().await {
            break address;
        }
    };
    let peer = *server.local_peer_id();
    let task = tokio::spawn(async move {
        loop {
            server.select_next_some().await;
        }
    });
    (peer, addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kad_put_value_is_not_stored() {
    let (control_peer, control_addr, control) = storing_kad_server().await;
    let control_probe = attack_and_probe(control_peer, &control_addr, "control").await;
    control.abort();
    assert!(
        control_probe.put_acknowledged
            && control_probe.provide_acknowledged
            && control_probe.records == [(Some(control_peer), "planted value".to_string())]
            && !control_probe.providers.is_empty(),
        "control: a storing kad server must hand back what the attack planted: \
         records {:?}, providers {:?}",
        control_probe.records,
        control_probe.providers
    );

    let victim = DhtNode::create(hivemind_dht(Vec::new())).await.unwrap();
    let victim_peer = victim.p2p().peer_id();
    let victim_addr = without_p2p(victim.p2p().visible_maddrs()[0].clone());
    let probe = attack_and_probe(victim_peer, &victim_addr, "victim").await;
    eprintln!(
        "kad PUT_VALUE to the victim acknowledged: {}, ADD_PROVIDER: {}; then GET_VALUE: {:?}, \
         GET_PROVIDERS: {:?} (peers answered: {:?}); control server: {:?}, {:?}",
        probe.put_acknowledged,
        probe.provide_acknowledged,
        probe.records,
        probe.providers,
        probe.answered,
        control_probe.records,
        control_probe.providers,
    );

    // The victim still serves an honest DHT node.
    let honest = DhtNode::create(hivemind_dht(victim.p2p().visible_maddrs()))
        .await
        .unwrap();
    let key = DhtId::generate("honest");
    let stored = honest
        .protocol()
        .call_store(
            victim_peer,
            vec![StoreItem {
                key,
                value: StoreValue::Regular(encode_value("value").unwrap()),
                expiration_time: get_dht_time() + 300.0,
                in_cache: false,
            }],
        )
        .await;
    let found = honest.protocol().call_find(victim_peer, vec![key]).await;

    honest.shutdown().await;
    victim.shutdown().await;
    assert!(
        probe.answered.0 >= 1 && probe.answered.1 >= 1,
        "the victim did not answer the prober's queries"
    );
    assert!(
        probe.records.is_empty(),
        "GET_VALUE returned {:?}",
        probe.records
    );
    assert!(
        probe.providers.is_empty(),
        "GET_PROVIDERS returned {:?}",
        probe.providers
    );
    assert_eq!(stored, Some(vec![true]), "honest store after the attack");
    assert!(
        found.is_some_and(|found| found.values().all(|f| f.value.is_some())),
        "honest find after the attack"
    );
}
