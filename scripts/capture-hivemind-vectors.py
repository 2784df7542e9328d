#!/usr/bin/env python3
"""Captures byte-exact wire vectors from a real hivemind 1.1.12 installation.

Run with a Python that has `hivemind==1.1.12` installed (the venv that
scripts/interop-hivemind.sh makes, or any other):

    /path/to/venv/bin/python scripts/capture-hivemind-vectors.py \
        > servicer-runtime/tests/data/hivemind-vectors.txt

Every vector is produced by hivemind's own code, not by hand:
- protobuf messages with hivemind's generated classes (`hivemind.proto.p2pd_pb2`,
  `hivemind.proto.dht_pb2`) and `SerializeToString()`;
- unary envelopes with hivemind's delimited writer `write_pbmsg` (varint + protobuf, the same
  framing the Go daemon's `ggio.NewDelimitedWriter` puts on the libp2p stream);
- stream frames with `P2P.send_protobuf` (marker + u64 big-endian length + protobuf), including
  `P2P.END_OF_STREAM`;
- DHT keys with `DHTID.generate(...).to_bytes()`, values and subkeys with hivemind's
  `MSGPackSerializer`, `DictionaryDHTValue` as `DHTProtocol` serializes it, and peer ids with
  `PeerID`.
Inputs are fixed (no randomness, no clock), so the output is reproducible.

Output: one vector per line, `name hex`; `#` lines are comments. The Rust test
`servicer-runtime/tests/hivemind_vectors.rs` decodes and re-encodes each one.
"""

import asyncio
import sys

import hivemind
from hivemind.dht.protocol import DHTProtocol
from hivemind.dht.routing import DHTID
from hivemind.p2p import P2P
from hivemind.p2p.p2p_daemon_bindings.datastructures import PeerID
from hivemind.p2p.p2p_daemon_bindings.utils import write_pbmsg
from hivemind.proto import dht_pb2, p2pd_pb2
from hivemind.utils.serializer import MSGPackSerializer
from hivemind.dht.storage import DictionaryDHTValue

CALL_ID = bytes(range(0x10, 0x20))  # 16 bytes, like uuid4().bytes
# Two fixed Ed25519 peer ids (identity multihash of the protobuf public key).
PEER_A = PeerID.from_base58("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA")
PEER_B = PeerID.from_base58("12D3KooWRQGGJBEJ4FJTbhNMMKUDwjVYBMCkeP6PKYqkbydRSTvn")
NODE_A = DHTID.generate(source="node-a")
NODE_B = DHTID.generate(source="node-b")
EXPIRATION = 1764000000.25
# Entries of a DictionaryDHTValue that expired are dropped when it is packed: EXPIRATION has
# passed, so the "dict" value above packs empty. FAR_FUTURE (2100-01-01) keeps entries alive.
FAR_FUTURE = 4102444800.5


class Capture:
    """Stands in for an asyncio.StreamWriter: collects what hivemind's writers write."""

    def __init__(self):
        self.data = bytearray()

    def write(self, data):
        self.data += bytes(data)

    async def drain(self):
        pass


async def written(write, *args):
    capture = Capture()
    await write(*args, capture)
    return bytes(capture.data)


async def delimited(message):
    capture = Capture()
    await write_pbmsg(capture, message)
    return bytes(capture.data)


def emit(name, data):
    print(f"{name} {data.hex()}")


async def main():
    assert hivemind.__version__ == "1.1.12", hivemind.__version__
    ser = MSGPackSerializer

    print(f"# captured from hivemind {hivemind.__version__} by scripts/capture-hivemind-vectors.py")
    print("# command: <venv>/bin/python scripts/capture-hivemind-vectors.py > servicer-runtime/tests/data/hivemind-vectors.txt")

    # DHT messages (payloads of the unary envelopes of DHTProtocol.rpc_*).
    ping_request = dht_pb2.PingRequest(peer=dht_pb2.NodeInfo(node_id=NODE_A.to_bytes()), validate=True)
    ping_response = dht_pb2.PingResponse(
        peer=dht_pb2.NodeInfo(node_id=NODE_B.to_bytes()), dht_time=EXPIRATION - 600, available=True
    )
    dictionary = DictionaryDHTValue()
    dictionary.store("subkey", ser.dumps("subvalue"), EXPIRATION)  # values inside are binary
    store_request = dht_pb2.StoreRequest(
        keys=[DHTID.generate(source="mykey").to_bytes(), DHTID.generate(source=("tuple", 1)).to_bytes(),
              DHTID.generate(source="dict").to_bytes()],
        subkeys=[DHTProtocol.IS_REGULAR_VALUE, ser.dumps("subkey"), DHTProtocol.IS_DICTIONARY],
        values=[ser.dumps("hello"), ser.dumps([1, 2.5, None]), ser.dumps(dictionary)],
        expiration_time=[EXPIRATION, EXPIRATION + 1, EXPIRATION + 2],
        in_cache=[False, True, False],
        peer=dht_pb2.NodeInfo(node_id=NODE_A.to_bytes()),
    )
    store_response = dht_pb2.StoreResponse(store_ok=[True, False, True],
                                           peer=dht_pb2.NodeInfo(node_id=NODE_B.to_bytes()))
    find_request = dht_pb2.FindRequest(
        keys=[DHTID.generate(source="mykey").to_bytes(), DHTID.generate(source="missing").to_bytes()],
        peer=dht_pb2.NodeInfo(node_id=NODE_A.to_bytes()),
    )
    found = dht_pb2.FindResult(type=dht_pb2.FOUND_REGULAR, value=ser.dumps("hello"), expiration_time=EXPIRATION)
    found.nearest_node_ids.append(NODE_A.to_bytes())
    found.nearest_peer_ids.append(PEER_A.to_bytes())
    missing = dht_pb2.FindResult(type=dht_pb2.NOT_FOUND)
    missing.nearest_node_ids.extend([NODE_A.to_bytes(), NODE_B.to_bytes()])
    missing.nearest_peer_ids.extend([PEER_A.to_bytes(), PEER_B.to_bytes()])
    dict_result = dht_pb2.FindResult(
        type=dht_pb2.FOUND_DICTIONARY, value=ser.dumps(dictionary), expiration_time=EXPIRATION
    )
    find_response = dht_pb2.FindResponse(results=[found, missing, dict_result],
                                         peer=dht_pb2.NodeInfo(node_id=NODE_B.to_bytes()))
    client_ping = dht_pb2.PingRequest()  # client mode: no node info at all
    # A whole dictionary with live entries (a str and a tuple subkey), as replication sends it.
    live = DictionaryDHTValue()
    live.store("subkey", ser.dumps("subvalue"), FAR_FUTURE)
    live.store(("tuple", 1), ser.dumps(b"bytes"), FAR_FUTURE - 1)
    store_dictionary = dht_pb2.StoreRequest(
        keys=[DHTID.generate(source="dict").to_bytes()],
        subkeys=[DHTProtocol.IS_DICTIONARY],
        values=[ser.dumps(live)],
        expiration_time=[live.latest_expiration_time],
        in_cache=[False],
        peer=dht_pb2.NodeInfo(node_id=NODE_A.to_bytes()),
    )
    find_dictionary = dht_pb2.FindResponse(
        results=[dht_pb2.FindResult(type=dht_pb2.FOUND_DICTIONARY, value=ser.dumps(live),
                                    expiration_time=live.latest_expiration_time)],
        peer=dht_pb2.NodeInfo(node_id=NODE_B.to_bytes()),
    )

    for name, message in [
        ("dht.ping_request", ping_request),
        ("dht.ping_request_client", client_ping),
        ("dht.ping_response", ping_response),
        ("dht.store_request", store_request),
        ("dht.store_response", store_response),
        ("dht.find_request", find_request),
        ("dht.find_response", find_response),
        ("dht.store_request_dictionary", store_dictionary),
        ("dht.find_response_dictionary", find_dictionary),
    ]:
        emit(name, message.SerializeToString())

    # Unary envelopes as they cross the network (varint-delimited PersistentConnectionRequest).
    call = p2pd_pb2.PersistentConnectionRequest(
        callId=CALL_ID,
        callUnary=p2pd_pb2.CallUnaryRequest(
            peer=PEER_B.to_bytes(), proto="DHTProtocol.rpc_ping", data=ping_request.SerializeToString()
        ),
    )
    emit("unary.request", await delimited(call))
    reply = p2pd_pb2.PersistentConnectionRequest(
        callId=CALL_ID, unaryResponse=p2pd_pb2.CallUnaryResponse(response=ping_response.SerializeToString())
    )
    emit("unary.response", await delimited(reply))
    # What hivemind's control.py sends when a handler raises: repr(exc).encode().
    error = p2pd_pb2.PersistentConnectionRequest(
        callId=CALL_ID, unaryResponse=p2pd_pb2.CallUnaryResponse(error=repr(ValueError("boom")).encode())
    )
    emit("unary.error", await delimited(error))
    empty = p2pd_pb2.PersistentConnectionRequest(
        callId=CALL_ID, unaryResponse=p2pd_pb2.CallUnaryResponse(response=b"")
    )
    emit("unary.response_empty", await delimited(empty))

    # Stream frames (P2P.send_protobuf).
    emit("stream.message", await written(P2P.send_protobuf, ping_response))
    emit("stream.message_empty", await written(P2P.send_protobuf, dht_pb2.PingRequest()))
    emit("stream.error", await written(P2P.send_protobuf, p2pd_pb2.RPCError(message=str(ValueError("stream boom")))))
    emit("stream.end_of_stream", await written(P2P.send_protobuf, P2P.END_OF_STREAM))


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
