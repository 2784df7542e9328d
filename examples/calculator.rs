//! The servicer tutorial: one `impl` block, four kinds of RPC, two peers on loopback.
//!
//! `cargo run --release --example calculator`

use std::sync::Arc;

use futures::StreamExt;
use p2p_servicer::runtime::{P2P, P2PConfig, RequestStream, ResponseStream, RpcContext, RpcError};
use p2p_servicer::servicer;

/// A calculator whose `rpc_*` methods other peers can call.
struct Calculator;

#[servicer]
impl Calculator {
    /// unary -> unary: one number in, its square out.
    async fn rpc_square(&self, x: i64, _ctx: RpcContext) -> Result<i64, String> {
        x.checked_mul(x).ok_or_else(|| format!("{x}² overflows"))
    }

    /// stream -> unary: the sum of every number sent.
    async fn rpc_sum(&self, mut xs: RequestStream<i64>, _ctx: RpcContext) -> Result<i64, RpcError> {
        let mut sum = 0;
        while let Some(x) = xs.next().await {
            sum += x?;
        }
        Ok(sum)
    }

    /// unary -> stream: counts from 0 up to (not including) `n`.
    async fn rpc_count(&self, n: i64, _ctx: RpcContext) -> Result<ResponseStream<i64>, String> {
        Ok(ResponseStream::iter(0..n))
    }

    /// stream -> stream: for each number, its square and its cube.
    async fn rpc_powers(
        &self,
        xs: RequestStream<i64>,
        ctx: RpcContext,
    ) -> Result<ResponseStream<i64>, String> {
        println!(
            "server: {} called by {}",
            ctx.handle_name(),
            ctx.remote_peer()
        );
        Ok(ResponseStream::new(xs.flat_map(|x| {
            let powers = match x {
                Ok(x) => vec![Ok(x * x), Ok(x * x * x)],
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(powers)
        })))
    }
}

#[tokio::main]
async fn main() -> Result<(), RpcError> {
    let server = P2P::create(P2PConfig::default()).await?;
    Arc::new(Calculator).add_p2p_handlers(&server, None)?;
    println!(
        "server {} listening on {:?}",
        server.peer_id(),
        server.visible_maddrs()
    );

    let client =
        P2P::create(P2PConfig::default().with_initial_peers(server.visible_maddrs())).await?;
    let calc = Calculator::get_stub(&client, server.peer_id());

    println!("rpc_square(12)       = {}", calc.rpc_square(12).await?);
    println!(
        "rpc_sum(1..=100)     = {}",
        calc.rpc_sum(futures::stream::iter(1..=100)).await?
    );
    let counted: Vec<i64> = calc
        .rpc_count(5)
        .await?
        .map(|r| r.unwrap_or(-1))
        .collect()
        .await;
    println!("rpc_count(5)         = {counted:?}");
    let powers: Vec<i64> = calc
        .rpc_powers(futures::stream::iter([2, 3]))
        .await?
        .map(|r| r.unwrap_or(-1))
        .collect()
        .await;
    println!("rpc_powers([2, 3])   = {powers:?}");
    match calc.rpc_square(i64::MAX).await {
        Err(RpcError::Remote { message }) => {
            println!("rpc_square(i64::MAX) failed remotely: {message}")
        }
        other => println!("rpc_square(i64::MAX) = {other:?}"),
    }

    client.shutdown().await;
    server.shutdown().await;
    Ok(())
}
