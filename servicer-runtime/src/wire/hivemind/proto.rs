//! hivemind's protobuf messages, written by hand with `prost` derives (no `protoc`, no build script).
//!
//! Field numbers, types and labels are copied from hivemind 1.1.12 (commit 4bd43b77 of
//! learning-at-home/hivemind):
//! - `hivemind/proto/p2pd.proto` (proto2; identical to `pb/p2pd.proto` of
//!   learning-at-home/go-libp2p-daemon v0.5.0.hivemind1 except for the package name and the extra
//!   `RPCError`): the unary call envelope [`PersistentConnectionRequest`] /
//!   [`PersistentConnectionResponse`] and the stream error frame [`StreamError`].
//! - `hivemind/proto/auth.proto` (proto3): the optional authorization fields (tag 1 of every DHT
//!   message), which a node without an authorizer leaves unset and ignores.
//!
//! The DHT's own messages (`dht.proto`) live in the `dht` crate (`servicer_dht::hivemind_proto`): nothing in
//! the runtime knows the DHT.
//!
//! proto2 `required` fields are declared `required` here, so prost always encodes them, even when
//! empty: the Go daemon's gogo-protobuf unmarshaller rejects a message that lacks one
//! (`pb/p2pd.pb.go:5408, 8010-8016` of the daemon). prost does not check their presence on decode;
//! [`super::unary`] checks what matters (the 16-byte call id).
//!
//! Only the envelope messages that can appear on the network are used by this crate; the daemon-local
//! ones (`AddUnaryHandlerRequest`, `RemoveUnaryHandlerRequest`, `DaemonError`) are declared so that
//! every variant of the envelope's `oneof` decodes.

// ---------------------------------------------------------------------------------------------
// p2pd.proto (proto2)
// ---------------------------------------------------------------------------------------------

/// `PersistentConnectionRequest` (p2pd.proto): what a hivemind daemon writes on a unary call's
/// libp2p stream, in both directions: `call_unary` from the caller, `unary_response` back.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct PersistentConnectionRequest {
    /// `required bytes callId = 1`: a 16-byte UUID (hivemind uses `uuid4().bytes`).
    #[prost(bytes = "vec", required, tag = "1")]
    pub call_id: Vec<u8>,
    /// `oneof message`.
    #[prost(oneof = "persistent_connection_request::Body", tags = "2, 6, 3, 4, 5")]
    pub message: Option<persistent_connection_request::Body>,
}

/// The `oneof message` of [`PersistentConnectionRequest`].
pub mod persistent_connection_request {
    /// `oneof message` of `PersistentConnectionRequest`.
    #[derive(Clone, PartialEq, ::prost::Oneof)]
    pub enum Body {
        /// `AddUnaryHandlerRequest addUnaryHandler = 2` (daemon-local only).
        #[prost(message, tag = "2")]
        AddUnaryHandler(super::AddUnaryHandlerRequest),
        /// `RemoveUnaryHandlerRequest removeUnaryHandler = 6` (daemon-local only).
        #[prost(message, tag = "6")]
        RemoveUnaryHandler(super::RemoveUnaryHandlerRequest),
        /// `CallUnaryRequest callUnary = 3`: the request of a unary call.
        #[prost(message, tag = "3")]
        CallUnary(super::CallUnaryRequest),
        /// `CallUnaryResponse unaryResponse = 4`: the reply of a unary call.
        #[prost(message, tag = "4")]
        UnaryResponse(super::CallUnaryResponse),
        /// `Cancel cancel = 5` (daemon-local only: on the network a call is cancelled by closing
        /// its stream).
        #[prost(message, tag = "5")]
        Cancel(super::Cancel),
    }
}

/// `PersistentConnectionResponse` (p2pd.proto): daemon → local Python client only. Declared for
/// completeness (tools that speak to a local `p2pd`); it never crosses the network.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct PersistentConnectionResponse {
    /// `required bytes callId = 1`.
    #[prost(bytes = "vec", required, tag = "1")]
    pub call_id: Vec<u8>,
    /// `oneof message`.
    #[prost(oneof = "persistent_connection_response::Body", tags = "2, 3, 4, 5")]
    pub message: Option<persistent_connection_response::Body>,
}

/// The `oneof message` of [`PersistentConnectionResponse`].
pub mod persistent_connection_response {
    /// `oneof message` of `PersistentConnectionResponse`.
    #[derive(Clone, PartialEq, ::prost::Oneof)]
    pub enum Body {
        /// `CallUnaryResponse callUnaryResponse = 2`.
        #[prost(message, tag = "2")]
        CallUnaryResponse(super::CallUnaryResponse),
        /// `CallUnaryRequest requestHandling = 3`.
        #[prost(message, tag = "3")]
        RequestHandling(super::CallUnaryRequest),
        /// `DaemonError daemonError = 4`.
        #[prost(message, tag = "4")]
        DaemonError(super::DaemonError),
        /// `Cancel cancel = 5`.
        #[prost(message, tag = "5")]
        Cancel(super::Cancel),
    }
}

/// `CallUnaryRequest` (p2pd.proto): one unary request.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CallUnaryRequest {
    /// `required bytes peer = 1`: on the network, the *callee's* peer id (the caller's daemon
    /// forwards what its Python client asked for); the callee's daemon overwrites it with the
    /// connection's remote peer id, so a callee must take the caller's identity from the connection.
    #[prost(bytes = "vec", required, tag = "1")]
    pub peer: Vec<u8>,
    /// `required string proto = 2`: the handler name, e.g. `DHTProtocol.rpc_ping`.
    #[prost(string, required, tag = "2")]
    pub proto: String,
    /// `required bytes data = 3`: the serialized request message.
    #[prost(bytes = "vec", required, tag = "3")]
    pub data: Vec<u8>,
}

/// `CallUnaryResponse` (p2pd.proto): the outcome of one unary call.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CallUnaryResponse {
    /// `oneof result`.
    #[prost(oneof = "call_unary_response::Result", tags = "1, 2")]
    pub result: Option<call_unary_response::Result>,
}

/// The `oneof result` of [`CallUnaryResponse`].
pub mod call_unary_response {
    /// `oneof result` of `CallUnaryResponse`.
    #[derive(Clone, PartialEq, ::prost::Oneof)]
    pub enum Result {
        /// `bytes response = 1`: the serialized response message.
        #[prost(bytes = "vec", tag = "1")]
        Response(Vec<u8>),
        /// `bytes error = 2`: the handler's error; hivemind sends `repr(exc).encode()`.
        #[prost(bytes = "vec", tag = "2")]
        Error(Vec<u8>),
    }
}

/// `AddUnaryHandlerRequest` (p2pd.proto, daemon-local).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct AddUnaryHandlerRequest {
    /// `required string proto = 1`.
    #[prost(string, required, tag = "1")]
    pub proto: String,
    /// `required bool balanced = 2`.
    #[prost(bool, required, tag = "2")]
    pub balanced: bool,
}

/// `RemoveUnaryHandlerRequest` (p2pd.proto, daemon-local).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct RemoveUnaryHandlerRequest {
    /// `required string proto = 1`.
    #[prost(string, required, tag = "1")]
    pub proto: String,
}

/// `DaemonError` (p2pd.proto, daemon-local).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct DaemonError {
    /// `optional string message = 1`.
    #[prost(string, optional, tag = "1")]
    pub message: Option<String>,
}

/// `Cancel` (p2pd.proto): an empty message.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Cancel {}

/// `RPCError` (hivemind's p2pd.proto only): the payload of an error frame on a stream handler's
/// stream. The *empty* message (no `message` field) is hivemind's `END_OF_STREAM`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct StreamError {
    /// `optional string message = 1`: `str(exc)` of the failed handler.
    #[prost(string, optional, tag = "1")]
    pub message: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// auth.proto (proto3)
// ---------------------------------------------------------------------------------------------

/// `AccessToken` (auth.proto).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct AccessToken {
    /// `string username = 1`.
    #[prost(string, tag = "1")]
    pub username: String,
    /// `bytes public_key = 2`.
    #[prost(bytes = "vec", tag = "2")]
    pub public_key: Vec<u8>,
    /// `string expiration_time = 3`.
    #[prost(string, tag = "3")]
    pub expiration_time: String,
    /// `bytes signature = 4`.
    #[prost(bytes = "vec", tag = "4")]
    pub signature: Vec<u8>,
}

/// `RequestAuthInfo` (auth.proto): tag 1 of every DHT request; unset without an authorizer.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct RequestAuthInfo {
    /// `AccessToken client_access_token = 1`.
    #[prost(message, optional, tag = "1")]
    pub client_access_token: Option<AccessToken>,
    /// `bytes service_public_key = 2`.
    #[prost(bytes = "vec", tag = "2")]
    pub service_public_key: Vec<u8>,
    /// `double time = 3`.
    #[prost(double, tag = "3")]
    pub time: f64,
    /// `bytes nonce = 4`.
    #[prost(bytes = "vec", tag = "4")]
    pub nonce: Vec<u8>,
    /// `bytes signature = 5`.
    #[prost(bytes = "vec", tag = "5")]
    pub signature: Vec<u8>,
}

/// `ResponseAuthInfo` (auth.proto): tag 1 of every DHT response; unset without an authorizer.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ResponseAuthInfo {
    /// `AccessToken service_access_token = 1`.
    #[prost(message, optional, tag = "1")]
    pub service_access_token: Option<AccessToken>,
    /// `bytes nonce = 2`.
    #[prost(bytes = "vec", tag = "2")]
    pub nonce: Vec<u8>,
    /// `bytes signature = 3`.
    #[prost(bytes = "vec", tag = "3")]
    pub signature: Vec<u8>,
}
