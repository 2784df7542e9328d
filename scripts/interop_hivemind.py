#!/usr/bin/env python3
"""The Python half of scripts/interop-hivemind.sh: real hivemind 1.1.12 peers against our
`hivemind_interop` example, on loopback.

    python scripts/interop_hivemind.py path/to/target/debug/examples

1. Rust calls Python: a hivemind P2P serves the `Interop` servicer below; the Rust example
   (`call <maddr>`) calls its four handlers and an unknown one.
   The same again with a Python peer that has an RSA identity (`identity_path`).
2. Python calls Rust: the Rust example serves `Interop` (`serve`); a hivemind stub made by
   `Interop.get_stub` calls its four handlers.
3. A Python `hivemind.DHT` bootstraps from our `p2p-dht node --wire hivemind` alone; Python stores
   (a value and subkeys), `p2p-dht --wire hivemind get` gets them; `p2p-dht store` stores, Python
   gets.
4. A mixed swarm: 3 Python DHTs and 3 Rust nodes (`hivemind_interop dht-swarm`), bootstrapped in
   a chain that alternates between the two, so each side must find the other's peers by id alone;
   every node stores its own key and a subkey of one shared dictionary, and every node gets every
   key and the whole dictionary.
Prints one line per check and exits non-zero if any fails.
"""

import asyncio
import functools
import os
import signal
import sys
import tempfile
from typing import AsyncIterator

import hivemind
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


def new_dht(initial_peers=()):
    return hivemind.DHT(initial_peers=list(initial_peers), host_maddrs=["/ip4/127.0.0.1/tcp/0"], start=True)


def shown(found):
    """A get's result as the Rust side prints it: the value, `a=x,b=y` for a dictionary, `-`."""
    if found is None:
        return "-"
    if isinstance(found.value, dict):
        return ",".join(sorted(f"{k}={v.value}" for k, v in found.value.items()))
    return str(found.value)


async def run(*argv):
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    return proc.returncode, out.decode(), err.decode()


async def python_joins_rust_dht(bins):
    # The program sits beside the examples folder (target/debug/p2p-dht).
    program = os.path.join(bins, os.pardir, "p2p-dht")
    node = await asyncio.create_subprocess_exec(
        program, "node", "--wire", "hivemind", "--host_maddrs", "/ip4/127.0.0.1/tcp/0",
        stdout=asyncio.subprocess.PIPE)
    dht = None
    try:
        line = (await asyncio.wait_for(node.stdout.readline(), TIMEOUT)).decode()
        assert "--initial-peers " in line, line
        maddrs = line.split("--initial-peers ", 1)[1].split()
        print(f"rust p2p-dht node {maddrs[0]}", flush=True)
        dht = new_dht(maddrs)
        check("python DHT bootstrapped from the rust p2p-dht node alone", True)
        client = [program, "--wire", "hivemind"]
        peers = ["--initial-peers", *maddrs]
        expiration = get_dht_time() + 600
        stored = [dht.store("py_key", "from python", expiration),
                  dht.store("py_dict", "v1", expiration, subkey="s1"),
                  dht.store("py_dict", "v2", expiration, subkey="s2")]
        check("python stores (a value, two subkeys)", all(stored), str(stored))
        rc, out, err = await run(*client, "get", "py_key", "--latest", *peers)
        check("rust gets python's value", rc == 0 and '"from python"' in out, f"rc={rc} {out.strip()!r} {err.strip()[-300:]!r}")
        rc, out, err = await run(*client, "get", "py_dict", "--latest", *peers)
        check("rust gets python's subkeys", rc == 0 and '"s1": "v1"' in out and '"s2": "v2"' in out,
              f"rc={rc} {out.strip()!r} {err.strip()[-300:]!r}")
        for argv in (["rust_key", "from rust"], ["rust_dict", "r1", "--subkey", "a"], ["rust_dict", "r2", "--subkey", "b"]):
            rc, out, err = await run(*client, "store", *argv, *peers)
            check(f"rust stores {argv}", rc == 0, f"rc={rc} {out.strip()!r} {err.strip()[-300:]!r}")
        found = dht.get("rust_key", latest=True)
        check("python gets rust's value", shown(found) == "from rust", repr(found))
        found = dht.get("rust_dict", latest=True)
        check("python gets rust's subkeys", shown(found) == "a=r1,b=r2", repr(found))
    finally:
        if dht is not None:
            dht.shutdown()
        node.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(node.wait(), 10)
        except asyncio.TimeoutError:
            node.kill()


async def mixed_swarm(bins):
    pythons = [new_dht()]
    first = str(pythons[0].get_visible_maddrs()[0])
    proc = await asyncio.create_subprocess_exec(
        os.path.join(bins, "hivemind_interop"), "dht-swarm", first,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)

    async def lines_until(end):
        out = []
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode()
            if not line:
                raise RuntimeError(f"rust swarm exited before {end}; got {out}")
            if line.strip() == end:
                return out
            out.append(line.split())

    try:
        rust = {}
        for _, i, maddr in await lines_until("READY"):
            rust.setdefault(int(i), []).append(maddr)
        # python 0 <- rust 0 <- rust 1 <- rust 2 <- python 1 <- python 2 (and python 2 also from rust 1)
        pythons.append(new_dht(rust[2]))
        pythons.append(new_dht([str(pythons[1].get_visible_maddrs()[0])]))
        check("mixed swarm of 3 python and 3 rust nodes started", True)
        expiration = get_dht_time() + 600
        for i, dht in enumerate(pythons):
            ok = dht.store(f"py_key_{i}", f"python {i}", expiration) and dht.store(
                "mixed_dict", f"python {i}", expiration, subkey=f"py_{i}")
            check(f"python node {i} stores", ok)
        proc.stdin.write(b"STORE\n")
        await proc.stdin.drain()
        for _, i, plain, sub in await lines_until("STORED"):
            check(f"rust node {i} stores", plain == "true" and sub == "true", f"{plain} {sub}")
        expected = {f"py_key_{i}": f"python {i}" for i in range(3)}
        expected.update({f"rust_key_{i}": f"rust {i}" for i in range(3)})
        expected["mixed_dict"] = ",".join(sorted([f"py_{i}=python {i}" for i in range(3)] +
                                                 [f"rust_{i}=rust {i}" for i in range(3)]))
        summary = f"({len(expected) - 1} keys and mixed_dict with all 6 subkeys)"
        for i, dht in enumerate(pythons):
            got = {key: shown(dht.get(key, latest=True)) for key in expected}
            wrong = {k: v for k, v in got.items() if v != expected[k]}
            check(f"python node {i} gets every key", not wrong, str(wrong) if wrong else summary)
        proc.stdin.write(("GET " + " ".join(expected) + "\n").encode())
        await proc.stdin.drain()
        got = {}
        for words in await lines_until("DONE"):
            got.setdefault(int(words[1]), {})[words[2]] = " ".join(words[3:])
        for i in range(3):
            wrong = {k: v for k, v in got.get(i, {}).items() if v != expected[k]}
            missing = set(expected) - set(got.get(i, {}))
            ok = not wrong and not missing
            check(f"rust node {i} gets every key", ok, summary if ok else f"{wrong} {missing or ''}")
    finally:
        for dht in pythons:
            dht.shutdown()
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except asyncio.TimeoutError:
            proc.kill()


async def main():
    bins = sys.argv[1]
    binary = os.path.join(bins, "hivemind_interop")
    with tempfile.TemporaryDirectory() as tmp:
        # hivemind makes an RSA identity when given an identity_path (`Qm...` peer ids).
        rsa = functools.partial(rust_calls_python, identity_path=os.path.join(tmp, "rsa.key"))
        for name, part in (("rust_calls_python", rust_calls_python), ("rust_calls_python_rsa", rsa),
                           ("python_calls_rust", python_calls_rust)):
            try:
                await part(binary)
            except Exception as e:
                check(name, False, repr(e))
        for name, part in (("python_joins_rust_dht", python_joins_rust_dht), ("mixed_swarm", mixed_swarm)):
            try:
                await part(bins)
            except Exception as e:
                check(name, False, repr(e))
    if failures:
        print(f"FAILED: {failures}", flush=True)
        sys.exit(1)
    print("ALL INTEROP CHECKS PASSED", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
