"""`glyphfuse serve` against `glyphfuse sample`: latency of one image, and the server under load.

    python benchmarks/bench_serve.py                                   # packaged model
    python benchmarks/bench_serve.py --requests 50 --cli-runs 10 --clients 8 --per-client 10
    python benchmarks/bench_serve.py -c runs/base64/checkpoint

Starts `glyphfuse serve --port 0` (a free port) in a subprocess, then:

(a) latency: the median wall time of ``--requests`` sequential ``POST /api/sample`` requests (one
    candidate, default steps, the seed of ``--seed``, as the client sees it: HTTP, JSON, base64
    PNG, OCR included) against the median wall time of ``--cli-runs`` runs of the same
    ``glyphfuse sample PROMPT -o x.png --seed S`` command (a new process each: Python and torch
    start-up, model loading, sampling, writing; no OCR, which the server always runs); prints both,
    the server's own sampling time and the ratio;
(b) load: ``--clients`` threads each sending ``--per-client`` requests at once (each its own
    prompt and seed); counts the 200 / 503 (queue full) / other answers, checks that every 200
    answer carries its own request's seed and prompt, and prints the wall time, throughput and
    latency percentiles.

The server samples one request at a time, so (b) measures queueing, not parallel speed-up.
Exit status 1 when an answer does not match its request or an answer is neither 200 nor 503.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

WORDS = "apple river stone cloud night paper light house green quartz fjord glyph fuse write model".split()


def glyphfuse_command() -> list[str]:
    script = Path(sys.executable).with_name("glyphfuse")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "glyphfuse"]


class Server:
    """`glyphfuse serve` in a subprocess; its output is drained by a thread (and kept)."""

    def __init__(self, checkpoint: str | None, queue_size: int | None):
        command = glyphfuse_command() + ["serve", "--port", "0"]
        command += ["-c", checkpoint] if checkpoint else []
        command += ["--queue-size", str(queue_size)] if queue_size else []
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        found: queue.Queue = queue.Queue()
        threading.Thread(target=self._drain, args=(found,), daemon=True).start()
        address = found.get(timeout=300)
        if address is None:
            raise SystemExit("glyphfuse serve did not start:\n" + "\n".join(self.lines))
        self.url = f"http://{address}"

    def _drain(self, found: queue.Queue) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if "http://" in line:
                found.put(line.split("http://", 1)[1].split()[0])
        found.put(None)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return -9


def post(url: str, body: dict, timeout: float = 600) -> tuple[int, dict, float]:
    """(status, JSON answer, wall seconds) of one POST /api/sample."""
    request = urllib.request.Request(url + "api/sample", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, data = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, data = exc.code, exc.read()
    seconds = time.perf_counter() - started
    try:
        answer = json.loads(data)
    except ValueError:
        answer = {"error": data[:200].decode("utf-8", "replace")}
    return status, answer, seconds


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def latency(server: Server, args) -> None:
    """(a): sequential requests against fresh `glyphfuse sample` processes."""
    body = {"prompt": args.prompt.replace("\\n", "\n"), "seed": args.seed, "candidates": 1}
    walls, sampling = [], []
    for _ in range(args.requests):
        status, answer, seconds = post(server.url, body)
        if status != 200:
            raise SystemExit(f"POST /api/sample answered {status}: {answer}")
        walls.append(seconds)
        sampling.append(answer["seconds"])
    cli = []
    with tempfile.TemporaryDirectory() as folder:
        command = glyphfuse_command() + ["sample", args.prompt, "-o", str(Path(folder) / "x.png"), "--seed", str(args.seed), "--no-progress"]
        command += ["-c", args.checkpoint] if args.checkpoint else []
        for _ in range(args.cli_runs):
            started = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            cli.append(time.perf_counter() - started)
    print(f"\n(a) one image, one candidate, default steps, seed {args.seed}, prompt {args.prompt!r}")
    print(f"{'':34s} {'runs':>5s} {'median s':>9s} {'min s':>7s} {'max s':>7s}")
    rows = [("POST /api/sample (client wall)", walls), ("  of which sampling + OCR (server)", sampling),
            ("glyphfuse sample (new process)", cli)]
    for name, values in rows:
        print(f"{name:34s} {len(values):5d} {statistics.median(values):9.3f} {min(values):7.3f} {max(values):7.3f}")
    print(f"ratio glyphfuse sample / server request: {statistics.median(cli) / statistics.median(walls):.1f}x"
          " (the server also reads every image with OCR; glyphfuse sample does not without --ocr)")


def load(server: Server, args) -> bool:
    """(b): concurrent clients; True when every answer was 200 or 503 and matched its request."""

    def client(index: int) -> list[tuple[dict, int, dict, float]]:
        out = []
        for k in range(args.per_client):
            body = {"prompt": f"{WORDS[index % len(WORDS)]}\n{WORDS[k % len(WORDS)]}", "seed": 1000 * index + k, "candidates": 1}
            out.append((body, *post(server.url, body)))
        return out

    started = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        results = [row for rows in pool.map(client, range(args.clients)) for row in rows]
    wall = time.perf_counter() - started
    counts = {"200": 0, "503": 0, "other": 0}
    mismatched = []
    for body, status, answer, _ in results:
        counts[str(status) if status in (200, 503) else "other"] += 1
        if status == 200 and (answer.get("seed"), answer.get("prompt")) != (body["seed"], body["prompt"]):
            mismatched.append((body, answer.get("seed"), answer.get("prompt")))
    ok = [seconds for _, status, _, seconds in results if status == 200]
    print(f"\n(b) {args.clients} concurrent clients x {args.per_client} requests = {len(results)} requests in {wall:.2f} s")
    print(f"answers: 200 {counts['200']}, 503 {counts['503']} (queue full), other {counts['other']}")
    if ok:
        print(f"throughput {len(ok) / wall:.2f} images/s; latency of the 200s: median {statistics.median(ok):.3f} s, "
              f"p95 {percentile(ok, 0.95):.3f} s, max {max(ok):.3f} s")
    print(f"answers whose seed and prompt match their request: {counts['200'] - len(mismatched)} of {counts['200']}"
          + (f"; MISMATCHED: {mismatched[:3]}" if mismatched else ""))
    return not mismatched and counts["other"] == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", "-c", default=None, help="checkpoint folder (default: the packaged model)")
    parser.add_argument("--prompt", default="hello\\nworld", help="prompt of (a), command-line form (\\n = line break)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--requests", type=int, default=20, help="(a): sequential server requests")
    parser.add_argument("--cli-runs", type=int, default=5, help="(a): glyphfuse sample runs")
    parser.add_argument("--clients", type=int, default=8, help="(b): concurrent clients")
    parser.add_argument("--per-client", type=int, default=10, help="(b): requests per client")
    parser.add_argument("--queue-size", type=int, default=None, help="the server's --queue-size (default: its default)")
    args = parser.parse_args()
    started = time.perf_counter()
    server = Server(args.checkpoint, args.queue_size)
    print(f"server {server.url} ready after {time.perf_counter() - started:.1f} s ({server.lines[-1]})")
    try:
        latency(server, args)
        good = load(server, args)
    finally:
        code = server.stop()
    print(f"\nserver stopped (exit status {code})")
    return 0 if good and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
