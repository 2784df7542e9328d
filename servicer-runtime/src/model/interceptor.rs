//! [`Interceptor`]: sees every inbound call of a servicer before its handler runs.

use std::time::Duration;

use super::RpcContext;

/// Sees every inbound call before its handler runs (hivemind's `wrapper=`): for authorization,
/// rate limiting or metrics.
pub trait Interceptor: Send + Sync + 'static {
    /// Called before the handler; `Err(message)` refuses the call and the caller gets
    /// [`RpcError::Refused`](crate::RpcError::Refused) with that message.
    fn before(&self, ctx: &RpcContext) -> Result<(), String>;

    /// Called after the handler finished (`ok` is false on a handler error, a cancelled call or a
    /// broken stream).
    fn after(&self, ctx: &RpcContext, ok: bool, elapsed: Duration) {
        let _ = (ctx, ok, elapsed);
    }
}

impl<F> Interceptor for F
where
    F: Fn(&RpcContext) -> Result<(), String> + Send + Sync + 'static,
{
    fn before(&self, ctx: &RpcContext) -> Result<(), String> {
        self(ctx)
    }
}
