pub use dht;
pub use servicer_macros::servicer;
pub use servicer_runtime as runtime;
