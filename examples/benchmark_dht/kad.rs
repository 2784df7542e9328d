//! `--baseline kad`: the benchmark's peers as libp2p-kad 0.49 nodes, on the same transport
//! stack as ours (TCP with nodelay or the in-memory transport, noise, yamux, identify, ping,
//! lazy protocol negotiation, 30 s idle connections).
//!
//! Settings, fixed so both systems run the same workload: server mode forced, replication factor 5,
//! `Quorum::One` for puts. kad has no subkeys, so the subkey `s` of key `k` is the record `k/s`,
//! and a get of `k` gets every such record. A get takes the first record found and stops the query
//! (kad has no newer-wins rule to search on for, unlike `--latest`).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig};
use libp2p::kad::{self, GetRecordOk, QueryId, QueryResult, Quorum, Record, RecordKey};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, Swarm, Transport, identify, noise, ping, tcp, yamux};
use tokio::sync::{mpsc, oneshot};

use super::BenchPeer;

#[derive(NetworkBehaviour)]
struct Behaviour {
    kad: kad::Behaviour<MemoryStore>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

enum Command {
    Bootstrap(oneshot::Sender<()>),
    Put {
        key: String,
        value: Vec<u8>,
        expires: Instant,
        reply: oneshot::Sender<bool>,
    },
    Get {
        key: String,
        reply: oneshot::Sender<Option<Vec<u8>>>,
    },
    Shutdown(oneshot::Sender<()>),
}

/// One libp2p-kad node, driven by its own task; cheap to clone.
#[derive(Clone)]
pub struct KadPeer {
    commands: mpsc::Sender<Command>,
    addrs: Vec<Multiaddr>,
    alive: Arc<AtomicBool>,
}

fn build_swarm(wait_timeout: Duration) -> Swarm<Behaviour> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("TCP transport")
        .with_other_transport(|key| {
            let noise = noise::Config::new(key)?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                MemoryTransport::default()
                    .upgrade(Version::V1)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default()),
            )
        })
        .expect("memory transport")
        .with_behaviour(|key| {
            let me = key.public().to_peer_id();
            let mut config = kad::Config::new(kad::PROTOCOL_NAME);
            config
                .set_replication_factor(NonZeroUsize::new(5).expect("5 > 0"))
                .set_substreams_timeout(wait_timeout);
            // The default of 1,024 records would refuse stores in long runs; ours has no limit.
            let store = MemoryStore::with_config(
                me,
                MemoryStoreConfig {
                    max_records: usize::MAX,
                    ..MemoryStoreConfig::default()
                },
            );
            let mut kad = kad::Behaviour::with_config(me, store, config);
            kad.set_mode(Some(kad::Mode::Server));
            Behaviour {
                kad,
                identify: identify::Behaviour::new(identify::Config::new(
                    "/benchmark/1.0.0".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
            }
        })
        .expect("behaviour")
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(Duration::from_secs(30))
                .with_substream_upgrade_protocol_override(Version::V1Lazy)
        })
        .build()
}

/// Owns the swarm: runs commands as kad queries and answers them when their queries finish.
async fn drive(mut swarm: Swarm<Behaviour>, mut commands: mpsc::Receiver<Command>) {
    let mut puts: HashMap<QueryId, oneshot::Sender<bool>> = HashMap::new();
    let mut gets: HashMap<QueryId, oneshot::Sender<Option<Vec<u8>>>> = HashMap::new();
    let mut bootstraps: HashMap<QueryId, oneshot::Sender<()>> = HashMap::new();
    loop {
        tokio::select! {
            command = commands.recv() => {
                let kad = &mut swarm.behaviour_mut().kad;
                match command {
                    None => return,
                    Some(Command::Shutdown(reply)) => {
                        drop(swarm);
                        let _ = reply.send(());
                        return;
                    }
                    Some(Command::Bootstrap(reply)) => match kad.bootstrap() {
                        Ok(id) => {
                            bootstraps.insert(id, reply);
                        }
                        Err(_) => {
                            let _ = reply.send(());
                        }
                    },
                    Some(Command::Put { key, value, expires, reply }) => {
                        let mut record = Record::new(RecordKey::new(&key), value);
                        record.expires = Some(expires);
                        match kad.put_record(record, Quorum::One) {
                            Ok(id) => {
                                puts.insert(id, reply);
                            }
                            Err(_) => {
                                let _ = reply.send(false);
                            }
                        }
                    }
                    Some(Command::Get { key, reply }) => {
                        let id = kad.get_record(RecordKey::new(&key));
                        gets.insert(id, reply);
                    }
                }
            }
            event = swarm.select_next_some() => match event {
                // kad learns a peer's listen addresses only from identify, as the libp2p docs say.
                SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                    peer_id,
                    info,
                    ..
                })) => {
                    for addr in info.listen_addrs {
                        swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                    id,
                    result,
                    step,
                    ..
                })) => match result {
                    QueryResult::PutRecord(result) => {
                        if let Some(reply) = puts.remove(&id) {
                            let _ = reply.send(result.is_ok());
                        }
                    }
                    QueryResult::GetRecord(Ok(GetRecordOk::FoundRecord(found))) => {
                        if let Some(reply) = gets.remove(&id) {
                            let _ = reply.send(Some(found.record.value));
                        }
                        if let Some(mut query) = swarm.behaviour_mut().kad.query_mut(&id) {
                            query.finish();
                        }
                    }
                    QueryResult::GetRecord(_) => {
                        if let Some(reply) = gets.remove(&id) {
                            let _ = reply.send(None);
                        }
                    }
                    QueryResult::Bootstrap(result) => {
                        let more = matches!(result, Ok(ok) if ok.num_remaining > 0);
                        let done = step.last || !more;
                        if done && let Some(reply) = bootstraps.remove(&id) {
                            let _ = reply.send(());
                        }
                    }
                    _ => {}
                },
                _ => {}
            },
        }
    }
}

impl KadPeer {
    async fn call<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.ok()?;
        answer.await.ok()
    }
}

impl BenchPeer for KadPeer {
    async fn start(listen: Multiaddr, initial: Vec<Multiaddr>, wait_timeout: Duration) -> Self {
        let mut swarm = build_swarm(wait_timeout);
        swarm.listen_on(listen).expect("listen");
        let bound = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };
        let me = *swarm.local_peer_id();
        for addr in &initial {
            let mut addr = addr.clone();
            if let Some(Protocol::P2p(peer)) = addr.pop() {
                swarm.behaviour_mut().kad.add_address(&peer, addr);
            }
        }
        let (commands, receiver) = mpsc::channel(1024);
        tokio::spawn(drive(swarm, receiver));
        let peer = KadPeer {
            commands,
            addrs: vec![bound.with(Protocol::P2p(me))],
            alive: Arc::new(AtomicBool::new(true)),
        };
        if !initial.is_empty() {
            peer.call(Command::Bootstrap).await;
        }
        peer
    }

    fn addrs(&self) -> Vec<Multiaddr> {
        self.addrs.clone()
    }

    async fn store(&self, key: &str, subkey: &str, value: &str, expiration: f64) -> bool {
        self.store_value(&format!("{key}/{subkey}"), value, expiration)
            .await
    }

    async fn store_value(&self, key: &str, value: &str, expiration: f64) -> bool {
        let expires = Instant::now() + Duration::from_secs_f64(expiration);
        let (key, value) = (key.to_string(), value.as_bytes().to_vec());
        self.call(|reply| Command::Put {
            key,
            value,
            expires,
            reply,
        })
        .await
        .unwrap_or(false)
    }

    async fn get_value(&self, key: &str, _latest: bool) -> Option<String> {
        let key = key.to_string();
        let found = self.call(|reply| Command::Get { key, reply }).await??;
        String::from_utf8(found).ok()
    }

    async fn get_all(&self, key: &str, expected: &HashMap<String, String>, _latest: bool) -> bool {
        if expected.is_empty() {
            return false; // as ours: nothing stored, nothing to find
        }
        let gets = expected.iter().map(|(subkey, value)| async move {
            let key = format!("{key}/{subkey}");
            let found = self.call(|reply| Command::Get { key, reply }).await;
            found.flatten().is_some_and(|v| v == value.as_bytes())
        });
        futures::future::join_all(gets)
            .await
            .into_iter()
            .all(|ok| ok)
    }

    async fn shutdown(&self) {
        self.alive.store(false, Ordering::SeqCst);
        self.call(Command::Shutdown).await;
    }

    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }
}
