#!/usr/bin/env python3
"""The Python half of scripts/interop-hivemind.sh: real hivemind 1.1.12 peers against our
`hivemind_interop` example, on loopback.

    python scripts/interop_hivemind.py path/to/hivemind_interop

1. Rust calls Python: a hivemind P2P serves the `Interop` servicer below; the Rust example
   (`call <maddr>`) calls its four handlers and an unknown one.
   The same again with a Python peer that has an RSA identity (`identity_path`).
2. Python calls Rust: the Rust example serves `Interop` (`serve`); a hivemind stub made by
   `Interop.get_stub` calls its four handlers.
Prints one line per check and exits non-zero if any fails.
"""

import asyncio
import functools
import os
import sys
import tempfile
from typing import AsyncIterator

from hivemind.p2p import P2P, P2PContext, P2PHandlerError, PeerID, ServicerBase
from hivemind.proto import dht_pb2
from hivemind.utils import get_dht_time
from hivemind.utils.asyncio import as_aiter
from hivemind.utils.multiaddr import Multiaddr

TIMEOUT = 60


class Interop(ServicerBase):
    async def rpc_ping(self, request: dht_pb2.PingRequest, context: P2PContext) -> dht_pb2.PingResponse:
        return dht_pb2.PingResponse(peer=request.peer, dht_time=get_dht_time(), available=request.validate)

    async def rpc_fail(self, request: dht_pb2.PingRequest, context: P2PContext) -> dht_pb2.PingResponse:
        raise ValueError("boom from python")

    async def rpc_count(
        self, request: dht_pb2.PingRequest, context: P2PContext
    ) -> AsyncIterator[dht_pb2.PingResponse]:
        for i in range(len(request.peer.node_id)):
            yield dht_pb2.PingResponse(peer=dht_pb2.NodeInfo(node_id=bytes([i]) * 20))

    async def rpc_echo(
        self, requests: AsyncIterator[dht_pb2.PingRequest], context: P2PContext
    ) -> AsyncIterator[dht_pb2.PingResponse]:
        async for request in requests:
            yield dht_pb2.PingResponse(peer=request.peer, available=request.validate)


failures = []


def check(what, ok, detail=""):
    print(f"{'OK' if ok else 'FAIL'} python: {what} {detail}".rstrip(), flush=True)
    if not ok:
        failures.append(what)


async def rust_calls_python(binary, **p2p_options):
    p2p = await P2P.create(host_maddrs=["/ip4/127.0.0.1/tcp/0"], **p2p_options)
    try:
        await Interop().add_p2p_handlers(p2p)
        maddr = str((await p2p.get_visible_maddrs())[0])
        print(f"python node {maddr}", flush=True)
        proc = await asyncio.create_subprocess_exec(binary, "call", maddr)
        try:
            rc = await asyncio.wait_for(proc.wait(), TIMEOUT)
        except asyncio.TimeoutError:
            proc.kill()
            rc = "timeout"
        kind = "RSA" if p2p_options else "Ed25519"
        check(f"rust stub called the python servicer with an {kind} peer id (unary, error, unknown, "
              "unary-stream, stream-stream)", rc == 0, f"rc={rc}")
    finally:
        await p2p.shutdown()


async def python_calls_rust(binary):
    proc = await asyncio.create_subprocess_exec(binary, "serve", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    p2p = None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode().strip()
        assert line.startswith("LISTENING "), line
        maddr = Multiaddr(line.split(" ", 1)[1])
        rust_peer = PeerID.from_base58(maddr.value_for_protocol("p2p"))
        print(f"rust node {maddr}", flush=True)
        p2p = await P2P.create(host_maddrs=["/ip4/127.0.0.1/tcp/0"])
        await p2p._client.connect(rust_peer, [maddr.decapsulate(Multiaddr(f"/p2p/{rust_peer}"))])
        stub = Interop.get_stub(p2p, rust_peer)

        request = dht_pb2.PingRequest(peer=dht_pb2.NodeInfo(node_id=b"\x07" * 20), validate=True)
        response = await stub.rpc_ping(request, timeout=TIMEOUT)
        check("unary rpc_ping", response.peer.node_id == b"\x07" * 20 and response.available, str(response).replace("\n", " "))

        try:
            await stub.rpc_fail(request, timeout=TIMEOUT)
            check("unary rpc_fail raises", False)
        except P2PHandlerError as e:
            check("unary rpc_fail raises P2PHandlerError", "boom from rust" in str(e), repr(e))

        counted = [r.peer.node_id async for r in await stub.rpc_count(
            dht_pb2.PingRequest(peer=dht_pb2.NodeInfo(node_id=b"\x01" * 3)))]
        check("unary-stream rpc_count", counted == [bytes([i]) * 20 for i in range(3)], f"{len(counted)} items")

        requests = [dht_pb2.PingRequest(peer=dht_pb2.NodeInfo(node_id=bytes([i]) * 20), validate=i % 2 == 0)
                    for i in range(4)]
        echoed = [(r.peer.node_id, r.available) async for r in await stub.rpc_echo(as_aiter(*requests))]
        check("stream-stream rpc_echo", echoed == [(bytes([i]) * 20, i % 2 == 0) for i in range(4)], f"{len(echoed)} items")

        try:
            await p2p.call_protobuf_handler(rust_peer, "Interop.rpc_missing", request, dht_pb2.PingResponse)
            check("unknown handler refused", False)
        except Exception as e:
            check("unknown handler refused", "protocols not supported" in str(e) or "protocol" in str(e).lower(), repr(e))
    finally:
        if p2p is not None:
            await p2p.shutdown()
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except asyncio.TimeoutError:
            proc.kill()


async def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        # hivemind makes an RSA identity when given an identity_path (`Qm...` peer ids).
        rsa = functools.partial(rust_calls_python, identity_path=os.path.join(tmp, "rsa.key"))
        for name, part in (("rust_calls_python", rust_calls_python), ("rust_calls_python_rsa", rsa),
                           ("python_calls_rust", python_calls_rust)):
            try:
                await part(binary)
            except Exception as e:
                check(name, False, repr(e))
    if failures:
        print(f"FAILED: {failures}", flush=True)
        sys.exit(1)
    print("ALL INTEROP CHECKS PASSED", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
