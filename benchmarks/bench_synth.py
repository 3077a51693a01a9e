"""Speed of `glyphfuse synth-fonts`: images per second at 128 px with 1 and 2 workers.

    python benchmarks/bench_synth.py [--count 2000] [--size 128] [--workers 1 2]

Each run writes into a fresh temporary folder (PNG + transcript + metadata.jsonl, as the CLI
does) and checks that every worker count produced byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import tempfile
import time
from pathlib import Path

from glyphfuse.data.synth import synthesize


def folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the pool workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"synth-fonts: {args.count} images at {args.size} px, {os.cpu_count()} CPU cores")
    digests = {}
    for workers in args.workers:
        with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
            out = Path(tmp) / "data"
            cpu_before = _cpu_seconds()
            started = time.perf_counter()
            synthesize(out, args.count, size=args.size, seed=args.seed, workers=workers, progress=False)
            seconds = time.perf_counter() - started
            cpu_ms = (_cpu_seconds() - cpu_before) / args.count * 1000
            digests[workers] = folder_digest(out)
            size_mb = sum(p.stat().st_size for p in out.iterdir()) / 1e6
        print(f"  workers={workers}: {args.count / seconds:7.0f} images/s  ({seconds:.2f} s; {cpu_ms:.2f} CPU-ms per image, all processes; {size_mb:.1f} MB on disk)")
    print(f"  (load average now: {', '.join(f'{x:.1f}' for x in os.getloadavg())}; other work on the machine slows these figures)")
    identical = len(set(digests.values())) == 1
    print(f"  outputs byte-identical across worker counts: {'yes' if identical else 'NO'}")


if __name__ == "__main__":
    main()
