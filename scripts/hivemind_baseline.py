#!/usr/bin/env python3
"""hivemind 1.1.12's figures on this machine, for BENCHMARKS.md's hivemind columns: the same
workloads as `benchmark_rpc` and `benchmark_dht --scenario pair`, on real hivemind peers on
loopback TCP (each P2P runs its p2pd daemon, as hivemind does).

    python scripts/hivemind_baseline.py [--calls 2000] [--ops 300] [--benchmark-dht PATH --runs 3]

RPC (two P2P instances in this process, a small protobuf message):
  unary echo one call at a time (p50, p99, calls/s) and with 64 concurrent callers; a unary
  request answered by a stream of 10,000 messages (msgs/s); a stream of 10 requests answered by
  one response (p50, calls/s).
DHT (two DHTNodes, the second bootstrapped from the first): both started (s); a fresh key stored
  through the first (p50, p99); got with latest=True through the second (p50, p99).
`--benchmark-dht PATH`: also runs hivemind's own benchmarks/benchmark_dht.py (from a checkout
  of hivemind 1.1.12) `--runs` times with its defaults and reports its total time.
Prints a table, or with --json one JSON object per figure.
"""

import argparse
import asyncio
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
from typing import AsyncIterator

from hivemind.dht.node import DHTNode
from hivemind.p2p import P2P, P2PContext, ServicerBase
from hivemind.proto import dht_pb2
from hivemind.utils import get_dht_time
from hivemind.utils.asyncio import as_aiter

LISTEN = ["/ip4/127.0.0.1/tcp/0"]
STREAM_RESPONSES = 10_000
CLIENT_STREAM_REQUESTS = 10
CONCURRENT_CALLERS = 64


class Bench(ServicerBase):
    async def rpc_echo(self, request: dht_pb2.PingRequest, context: P2PContext) -> dht_pb2.PingRequest:
        return request

    async def rpc_many(
        self, request: dht_pb2.PingRequest, context: P2PContext
    ) -> AsyncIterator[dht_pb2.PingRequest]:
        for _ in range(STREAM_RESPONSES):
            yield request

    async def rpc_last(
        self, requests: AsyncIterator[dht_pb2.PingRequest], context: P2PContext
    ) -> dht_pb2.PingRequest:
        last = None
        async for request in requests:
            last = request
        return last


def percentile(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, round((len(sorted_values) - 1) * p))]


def small_message():
    return dht_pb2.PingRequest(peer=dht_pb2.NodeInfo(node_id=secrets.token_bytes(20)), validate=True)


async def measure_rpc(calls, figures):
    server = await P2P.create(host_maddrs=LISTEN)
    client = await P2P.create(host_maddrs=LISTEN, initial_peers=await server.get_visible_maddrs())
    try:
        await Bench().add_p2p_handlers(server)
        stub = Bench.get_stub(client, server.peer_id)
        request = small_message()
        for _ in range(50):  # connections and handler streams set up first
            await stub.rpc_echo(request)

        times = []
        started = time.perf_counter()
        for _ in range(calls):
            t = time.perf_counter()
            await stub.rpc_echo(request)
            times.append(time.perf_counter() - t)
        took = time.perf_counter() - started
        times.sort()
        figures["unary p50 us"] = percentile(times, 0.5) * 1e6
        figures["unary p99 us"] = percentile(times, 0.99) * 1e6
        figures["unary sequential calls/s"] = calls / took

        per_caller = max(1, calls // CONCURRENT_CALLERS)

        async def caller():
            for _ in range(per_caller):
                await stub.rpc_echo(request)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(CONCURRENT_CALLERS)))
        figures["unary 64 concurrent callers calls/s"] = (
            per_caller * CONCURRENT_CALLERS / (time.perf_counter() - started)
        )

        rounds = 3
        started = time.perf_counter()
        for _ in range(rounds):
            received = 0
            async for _ in await stub.rpc_many(request):
                received += 1
            assert received == STREAM_RESPONSES, received
        figures["unary -> stream of 10,000 msgs/s"] = (
            rounds * STREAM_RESPONSES / (time.perf_counter() - started)
        )

        stream_calls = max(1, calls // 4)
        times = []
        started = time.perf_counter()
        for _ in range(stream_calls):
            t = time.perf_counter()
            await stub.rpc_last(as_aiter(*([request] * CLIENT_STREAM_REQUESTS)))
            times.append(time.perf_counter() - t)
        took = time.perf_counter() - started
        times.sort()
        figures["stream of 10 -> unary p50 us"] = percentile(times, 0.5) * 1e6
        figures["stream of 10 -> unary calls/s"] = stream_calls / took
    finally:
        await client.shutdown()
        await server.shutdown()


async def measure_dht_pair(ops, figures):
    started = time.perf_counter()
    first = await DHTNode.create(host_maddrs=LISTEN)
    second = await DHTNode.create(
        host_maddrs=LISTEN, initial_peers=await first.protocol.p2p.get_visible_maddrs()
    )
    figures["two peers started s"] = time.perf_counter() - started
    try:
        store_times, get_times, stored, got = [], [], 0, 0
        for _ in range(ops):
            key, value = secrets.token_hex(16), secrets.token_hex(16)
            t = time.perf_counter()
            stored += bool(await first.store(key, value, get_dht_time() + 300))
            store_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            found = await second.get(key, latest=True)
            get_times.append(time.perf_counter() - t)
            got += found is not None and found.value == value
        store_times.sort()
        get_times.sort()
        figures["dht store p50 ms"] = percentile(store_times, 0.5) * 1e3
        figures["dht store p99 ms"] = percentile(store_times, 0.99) * 1e3
        figures["dht get p50 ms"] = percentile(get_times, 0.5) * 1e3
        figures["dht get p99 ms"] = percentile(get_times, 0.99) * 1e3
        figures["dht store success %"] = 100.0 * stored / ops
        figures["dht get success %"] = 100.0 * got / ops
    finally:
        await second.shutdown()
        await first.shutdown()


def run_benchmark_dht(path, runs, figures):
    totals, stores, gets = [], [], []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, path], capture_output=True, text=True, check=True, cwd=os.path.dirname(path) or "."
        )
        log = out.stdout + out.stderr
        totals.append(float(re.search(r"Total benchmark time: ([\d.]+)", log).group(1)))
        stores.append(float(re.search(r"Store success rate: ([\d.]+)%", log).group(1)))
        gets.append(float(re.search(r"Get success rate: ([\d.]+)%", log).group(1)))
    figures["benchmark_dht total time s (median)"] = statistics.median(totals)
    figures["benchmark_dht total time s (min)"] = min(totals)
    figures["benchmark_dht total time s (max)"] = max(totals)
    figures["benchmark_dht store success % (min)"] = min(stores)
    figures["benchmark_dht get success % (min)"] = min(gets)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="sequential unary calls")
    parser.add_argument("--ops", type=int, default=300, help="DHT store + get pairs")
    parser.add_argument("--benchmark-dht", help="path to hivemind's benchmarks/benchmark_dht.py")
    parser.add_argument("--runs", type=int, default=3, help="runs of benchmark_dht.py")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    figures = {}
    await measure_rpc(args.calls, figures)
    await measure_dht_pair(args.ops, figures)
    if args.benchmark_dht:
        run_benchmark_dht(args.benchmark_dht, args.runs, figures)
    for name, value in figures.items():
        if args.json:
            print(json.dumps({"figure": name, "value": value}))
        else:
            print(f"{name:<40} {value:>14.3f}")


if __name__ == "__main__":
    asyncio.run(main())
