"""Bounded loopback load test of `kbuild serve`: dynamic batching on against off, same run.

Starts `kbuild serve EXPORT` once per mode on 127.0.0.1, fires REQUESTS POST :predict requests
(one SST-2 dev sentence each, row format) from CLIENTS concurrent clients (one keep-alive
connection per client thread), and reports requests/s, p50/p99 latency and errors.

    .venv/bin/python benchmarks/serve_load.py export/ --model sst2 [--clients 16] [--requests 2000]

Prints a Markdown table and writes benchmarks/out/serve_load.json. The clients share the CPU with
the server: on a small machine the numbers bound the server from below.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEV = Path(os.environ.get("KBUILD_DATA", REPO.parent / "shared" / "data")) / "sst2" / "dev.tsv"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(export: str, port: int, extra: list[str]) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    server = subprocess.Popen([sys.executable, "-m", "kbuild.cli", "serve", export, "--port", str(port), *extra],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            if server.poll() is not None:
                raise RuntimeError(f"server exited: {server.stderr.read()[-2000:]}") from None
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("server did not start in 120 s")


def load(port: int, model: str, sentences: list[str], clients: int, requests: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            body = json.dumps({"instances": [sentences[i % len(sentences)]]})
            start = time.perf_counter()
            try:
                connection.request("POST", f"/v1/models/{model}:predict", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                payload = response.read()
                ok = response.status == 200 and b"predictions" in payload
            except OSError as exc:
                ok, payload = False, str(exc).encode()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            elapsed = time.perf_counter() - start
            with lock:
                (latencies if ok else errors).append(elapsed if ok else payload[:200].decode("utf-8", "replace"))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return {"requests": requests, "ok": len(latencies), "errors": len(errors), "first_error": errors[0] if errors else None,
            "wall_s": round(wall, 2), "requests_per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(quantiles[49] * 1000, 1), "p99_ms": round(quantiles[98] * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", help="export root passed to kbuild serve")
    parser.add_argument("--model", required=True)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    args = parser.parse_args()

    sentences = [line.split("\t", 1)[1] for line in DEV.read_text(encoding="utf-8").splitlines()[1:]]
    modes = {
        "batching on": ["--batching", "--max-batch-size", str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms)],
        "batching off": ["--no-batching"],
    }
    results = {}
    for mode, extra in modes.items():
        port = free_port()
        server = start_server(args.export, port, extra)
        try:
            load(port, args.model, sentences, args.clients, args.warmup)  # traces, warms caches
            results[mode] = load(port, args.model, sentences, args.clients, args.requests)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"{args.clients} clients, {args.requests} requests of one sentence each, loopback\n")
    print("| mode | requests/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|")
    for mode, r in results.items():
        print(f"| {mode} | {r['requests_per_s']} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} |")
    out = REPO / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve_load.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
