"""Load test of `dlpipe serve` on 127.0.0.1: concurrent clients, one example per request.

    python benchmarks/serve_load.py --tabular RUN_DIR --image RUN_DIR [--clients 16] [--seconds 30]

For each model (a run of specs/tabular-classification.yaml: 30 numbers per request; a run of
specs/image-classification.yaml: one 8×8 digit as a base64 PNG per request) it starts
`python -m dlpipe serve` three times on a free port of 127.0.0.1 and measures, after a
warm-up, for `--seconds`:

    batched     `--clients` concurrent clients, micro-batching on (--max-batch 64, 2 ms)
    unbatched   the same clients, batching off (--max-batch 1): one model call per request
    one by one  one client, batching off: each request sent when the last was answered

Requests/s, latency percentiles (p50, p99), errors (any answer but 200, or a broken
connection) and the examples per model call (from the server's closing line). The clients
are one asyncio loop in this process, with keep-alive connections; they share the machine's
cores with the server, so the machine's load is printed beside the figures. Bounded: each
phase stops after `--seconds` or `--max-requests`, whichever comes first, and nothing but
127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tabular_instances(count: int = 64) -> list[dict]:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    return [{k: float(v) for k, v in row.items()} for row in frame.head(count).to_dict("records")]


def image_instances(count: int = 64) -> list[dict]:
    """Digits as a person would send them: 8-bit PNG files, base64 ({"b64": ...})."""
    import io

    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    out = []
    for scan in load_digits().images[:count]:
        buffer = io.BytesIO()
        Image.fromarray(np.round(scan * 255 / 16).astype(np.uint8)).save(buffer, format="PNG")
        out.append({"b64": base64.b64encode(buffer.getvalue()).decode()})
    return out


class Server:
    def __init__(self, model: Path, *options: str):
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dlpipe", "serve", str(model), "--host", "127.0.0.1", "--port", str(self.port),
             *options], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"dlpipe serve exited: {self.process.stderr.read()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as answer:
                    self.name = json.loads(answer.read())["model"]
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.process.kill()
                    raise SystemExit("dlpipe serve did not start within 300 s") from None
                time.sleep(0.3)

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=120)
        return stderr


async def client(port: int, path: str, bodies: list[bytes], until: float, budget: list[int],
                 latencies: list[float], errors: list[str], offset: int) -> None:
    """One keep-alive connection sending requests back to back until `until`."""
    reader = writer = None
    i = offset
    while time.monotonic() < until and budget[0] > 0:
        budget[0] -= 1
        body = bodies[i % len(bodies)]
        i += 1
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            began = time.perf_counter()
            writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
            answer = await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            status = int(head.split(b" ", 2)[1])
            if status != 200:
                errors.append(f"{status}: {answer[:200]!r}")
        except (OSError, asyncio.IncompleteReadError, AttributeError, ValueError) as err:
            errors.append(f"{type(err).__name__}: {err}")
            if writer is not None:
                writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def load(port: int, path: str, bodies: list[bytes], clients: int, seconds: float, max_requests: int):
    latencies: list[float] = []
    errors: list[str] = []
    budget = [max_requests]
    began = time.monotonic()
    await asyncio.gather(*(client(port, path, bodies, began + seconds, budget, latencies, errors, n * 7)
                           for n in range(clients)))
    return latencies, errors, time.monotonic() - began


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def phase(model: Path, instances: list[dict], label: str, clients: int, seconds: float, max_requests: int,
          options: tuple[str, ...]) -> dict:
    server = Server(model, *options)
    path = f"/v1/models/{server.name}:predict"
    bodies = [json.dumps({"instances": [instance]}).encode() for instance in instances]
    asyncio.run(load(server.port, path, bodies, clients, 2.0, 10_000))  # warm-up: first calls, caches
    load_before = os.getloadavg()[0]
    latencies, errors, elapsed = asyncio.run(load(server.port, path, bodies, clients, seconds, max_requests))
    load_after = os.getloadavg()[0]
    stderr = server.stop()
    served = re.search(r"(\d+) requests, (\d+) examples in (\d+) model calls", stderr)
    per_call = int(served.group(2)) / max(1, int(served.group(3))) if served else float("nan")
    return {"phase": label, "clients": clients, "requests": len(latencies), "seconds": elapsed,
            "per_second": len(latencies) / elapsed, "p50_ms": 1000 * percentile(latencies, 50),
            "p99_ms": 1000 * percentile(latencies, 99), "errors": len(errors), "examples_per_call": per_call,
            "load": (load_before, load_after), "first_error": errors[0] if errors else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabular", type=Path, help="a run of specs/tabular-classification.yaml")
    parser.add_argument("--image", type=Path, help="a run of specs/image-classification.yaml")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="per phase, a bound besides time")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    models = [(name, path, make) for name, path, make in (("tabular", args.tabular, tabular_instances),
                                                           ("image", args.image, image_instances)) if path]
    if not models:
        parser.error("give --tabular RUN_DIR and/or --image RUN_DIR")
    phases = [("batched", args.clients, ("--max-batch", "64", "--max-wait-ms", "2")),
              ("unbatched", args.clients, ("--max-batch", "1")),
              ("one by one", 1, ("--max-batch", "1"))]
    results = []
    print(f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    for name, model, make in models:
        instances = make()
        for label, clients, options in phases:
            result = {"model": name, **phase(model, instances, label, clients, args.seconds, args.max_requests,
                                            options)}
            results.append(result)
            print(f"{name:<8} {label:<11} {clients:>3} clients {result['requests']:>7} requests "
                  f"{result['per_second']:>8.1f}/s  p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms  "
                  f"errors {result['errors']}  examples/call {result['examples_per_call']:.1f}  "
                  f"load {result['load'][0]:.1f}→{result['load'][1]:.1f}"
                  + (f"  first error: {result['first_error']}" if result["first_error"] else ""),
                  file=sys.stderr, flush=True)
    print("| model | clients | mode | requests | requests/s | p50 ms | p99 ms | errors | examples per model call |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['model']} | {r['clients']} | {r['phase']} | {r['requests']:,} | {r['per_second']:.0f} | "
              f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | {r['examples_per_call']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
