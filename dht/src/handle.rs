//! [`Dht`]: the handle most users hold. It runs a [`DhtNode`] on its own thread and tokio runtime
//! (hivemind runs it in a child process) and offers blocking and async calls into it.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use servicer_runtime::{Multiaddr, PeerId};
use tokio::sync::oneshot;

use crate::lock;
use crate::{DhtConfig, DhtError, DhtNode, DhtTime, DhtValue, Key, ValueWithExpiration};

struct Running {
    node: DhtNode,
    runtime: tokio::runtime::Handle,
}

struct HandleInner {
    running: Mutex<Option<Result<Running, DhtError>>>,
    ready: Mutex<Option<std::sync::mpsc::Receiver<Result<Running, DhtError>>>>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A DHT node running in the background on its own thread.
///
/// ```no_run
/// use servicer_dht::{Dht, DhtConfig, get_dht_time};
///
/// let dht = Dht::start(DhtConfig::default()).unwrap();
/// dht.store("key", &"value", get_dht_time() + 60.0, None).unwrap();
/// let found = dht.get::<String>("key", false).unwrap();
/// dht.shutdown();
/// ```
#[derive(Clone)]
pub struct Dht {
    inner: Arc<HandleInner>,
}

impl std::fmt::Debug for Dht {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dht").finish_non_exhaustive()
    }
}

impl Dht {
    /// Starts a node in the background and waits until it is ready (or failed to start).
    pub fn start(config: DhtConfig) -> Result<Dht, DhtError> {
        let dht = Dht::spawn(config)?;
        dht.wait_until_ready(None)?;
        Ok(dht)
    }

    /// Starts a node in the background and returns at once; see [`wait_until_ready`](Self::wait_until_ready).
    pub fn spawn(config: DhtConfig) -> Result<Dht, DhtError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("dht-node".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("dht-worker")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = ready_tx.send(Err(DhtError::Stopped(format!(
                            "cannot start the node's runtime: {err}"
                        ))));
                        return;
                    }
                };
                let handle = runtime.handle().clone();
                runtime.block_on(async move {
                    let node = match DhtNode::create(config).await {
                        Ok(node) => node,
                        Err(err) => {
                            let _ = ready_tx.send(Err(err));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(Running {
                        node: node.clone(),
                        runtime: handle,
                    }));
                    let _ = stop_rx.await;
                    node.shutdown().await;
                });
            })
            .map_err(|e| DhtError::Stopped(format!("cannot start the node's thread: {e}")))?;
        Ok(Dht {
            inner: Arc::new(HandleInner {
                running: Mutex::new(None),
                ready: Mutex::new(Some(ready_rx)),
                stop: Mutex::new(Some(stop_tx)),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Waits until the node has started; `None` waits as long as it takes.
    pub fn wait_until_ready(&self, timeout: Option<Duration>) -> Result<(), DhtError> {
        self.running(timeout).map(drop)
    }

    fn running(
        &self,
        timeout: Option<Duration>,
    ) -> Result<(DhtNode, tokio::runtime::Handle), DhtError> {
        let mut running = lock(&self.inner.running);
        if running.is_none() {
            let mut ready = lock(&self.inner.ready);
            let Some(rx) = ready.as_ref() else {
                return Err(DhtError::Stopped("the node has shut down".into()));
            };
            let died = || DhtError::Stopped("the node's thread died while starting".into());
            let result = match timeout {
                Some(t) => match rx.recv_timeout(t) {
                    Ok(result) => result,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        return Err(DhtError::Stopped(format!(
                            "the node was not ready within {t:?}"
                        )));
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(died()),
                },
                None => rx.recv().unwrap_or_else(|_| Err(died())),
            };
            *running = Some(result);
            *ready = None;
        }
        match running.as_ref() {
            Some(Ok(r)) => Ok((r.node.clone(), r.runtime.clone())),
            Some(Err(err)) => Err(err.clone()),
            None => Err(DhtError::Stopped("the node has shut down".into())),
        }
    }

    /// Runs `f` against the node on the node's runtime and returns its result, from async code.
    pub async fn run_async<F, Fut, T>(&self, f: F) -> Result<T, DhtError>
    where
        F: FnOnce(DhtNode) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (node, runtime) = self.running(None)?;
        runtime
            .spawn(async move { f(node).await })
            .await
            .map_err(|e| DhtError::Stopped(format!("the node stopped during the call: {e}")))
    }

    /// Runs `f` against the node on the node's runtime and waits for its result. Blocks the
    /// calling thread: from async code use [`run_async`](Self::run_async).
    pub fn run<F, Fut, T>(&self, f: F) -> Result<T, DhtError>
    where
        F: FnOnce(DhtNode) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (node, runtime) = self.running(None)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(f(node).await);
        });
        rx.recv()
            .map_err(|_| DhtError::Stopped("the node stopped during the call".into()))
    }

    /// Gets and decodes the value under `key` (blocking).
    pub fn get<V: DeserializeOwned + Send + 'static>(
        &self,
        key: impl Into<Key>,
        latest: bool,
    ) -> Result<Option<ValueWithExpiration<DhtValue<V>>>, DhtError> {
        let key = key.into();
        self.run(move |node| async move { node.get(key, latest).await })?
    }

    /// Gets and decodes the value under `key`.
    pub async fn get_async<V: DeserializeOwned + Send + 'static>(
        &self,
        key: impl Into<Key>,
        latest: bool,
    ) -> Result<Option<ValueWithExpiration<DhtValue<V>>>, DhtError> {
        let key = key.into();
        self.run_async(move |node| async move { node.get(key, latest).await })
            .await?
    }

    /// Stores a value (blocking); true if any replica accepted it.
    pub fn store<V: Serialize + ?Sized>(
        &self,
        key: impl Into<Key>,
        value: &V,
        expiration_time: DhtTime,
        subkey: Option<Key>,
    ) -> Result<bool, DhtError> {
        let (key, value) = (key.into(), crate::encode_value(value)?);
        self.run(move |node| async move {
            node.store_encoded(key, value, expiration_time, subkey)
                .await
        })?
    }

    /// Stores a value; true if any replica accepted it.
    pub async fn store_async<V: Serialize + ?Sized>(
        &self,
        key: impl Into<Key>,
        value: &V,
        expiration_time: DhtTime,
        subkey: Option<Key>,
    ) -> Result<bool, DhtError> {
        let (key, value) = (key.into(), crate::encode_value(value)?);
        self.run_async(move |node| async move {
            node.store_encoded(key, value, expiration_time, subkey)
                .await
        })
        .await?
    }

    /// Adds record validators to the running node.
    pub fn add_validators(
        &self,
        validators: Vec<Arc<dyn crate::RecordValidator>>,
    ) -> Result<(), DhtError> {
        self.running(None)?.0.add_validators(validators);
        Ok(())
    }

    /// The node's peer id.
    pub fn peer_id(&self) -> Result<PeerId, DhtError> {
        Ok(self.running(None)?.0.p2p().peer_id())
    }

    /// Addresses other nodes can bootstrap from.
    pub fn visible_maddrs(&self) -> Result<Vec<Multiaddr>, DhtError> {
        Ok(self.running(None)?.0.p2p().visible_maddrs())
    }

    /// Stops the node and joins its thread. Idempotent; calls afterwards fail with
    /// [`DhtError::Stopped`].
    pub fn shutdown(&self) {
        if let Some(stop) = lock(&self.inner.stop).take() {
            let _ = stop.send(());
        }
        if let Some(thread) = lock(&self.inner.thread).take() {
            let _ = thread.join();
        }
        *lock(&self.inner.running) = Some(Err(DhtError::Stopped("the node has shut down".into())));
        *lock(&self.inner.ready) = None;
    }
}
