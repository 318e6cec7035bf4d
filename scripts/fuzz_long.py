#!/usr/bin/env python
"""The long fuzzing run: hundreds of thousands of cases of the hardening fuzzers, on every core.

    python scripts/fuzz_long.py --cases 100000              # the README's reliability figures
    python scripts/fuzz_long.py --cases 2000 --workers 2    # a quick look

Kinds (tests/hardening/fuzzers.py): mutated ONNX bytes and fields (of the zoo digits CNN, a tiny
model and random graphs), random valid graphs compared with onnx.reference, bit-flipped and
forged plan files, hostile dim expressions, garbage calibration caches. Every case runs in a
worker process under a time bound (SIGALRM in the worker, SIGKILL from here if the worker stops
answering) and a memory cap (RLIMIT_AS); a worker that dies is replaced and the case counted as a
crash. Outcomes: ok (a correct result), refused (a WorkbenchError), and the bugs: exception,
mismatch, timeout, memory (an allocation failed instead of being refused up front), crash, hang.

Cases are seeded by (kind, index): `run_case(kind, index)` in tests/hardening/fuzzers.py replays one.
The table goes to stdout; --report writes it and every bug case (kind, seed, detail) as JSON.
"""
from __future__ import annotations

import argparse
import collections
import datetime
import json
import multiprocessing as mp
import os
import queue
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTCOMES = ("ok", "refused", "exception", "mismatch", "timeout", "memory", "crash", "hang")
BUGS = OUTCOMES[2:]
CHUNK = 250  # cases handed to a worker at a time


def _all_kinds() -> list:
    """Every kind, in the order workers number them."""
    sys.path.insert(0, str(ROOT))
    from tests.hardening.fuzzers import CASES

    return list(CASES)


def _kinds() -> list:
    """The kinds this checkout can run (the calibration cache needs workbench.quant)."""
    kinds = _all_kinds()
    try:
        import workbench.quant.cache  # noqa: F401
    except ImportError:
        kinds.remove("calibration-cache")
    return kinds


# ------------------------------------------------------------------------------------- worker
def _worker(tasks, results, slot, timeout: float, memory: int) -> None:
    """Run chunks of cases until told to stop; `slot` says which case is running (for crash reports)."""
    import resource
    import warnings

    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    warnings.simplefilter("ignore")
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from tests.hardening.fuzzers import CASES, run_case

    kinds = list(CASES)
    while True:
        task = tasks.get()
        if task is None:
            return
        kind, start, stop = task
        for seed in range(start, stop):
            slot[0], slot[1], slot[2], slot[3] = kinds.index(kind), seed, stop, int(time.time() * 1000)
            outcome, detail = run_case(kind, seed, timeout)
            results.put((kind, seed, outcome, detail if outcome in BUGS else ""))
        slot[3] = 0


class Pool:
    """Workers with a shared task queue; dead or stuck workers are replaced and their case recorded."""

    def __init__(self, n: int, timeout: float, memory: int, kinds: list):
        self.ctx = mp.get_context("spawn")  # no fork: BLAS and protobuf threads do not survive it well
        self.tasks, self.results = self.ctx.Queue(), self.ctx.Queue()
        self.timeout, self.memory, self.kinds = timeout, memory, kinds
        self.grace = 2 * timeout + 2  # past the case's own SIGALRM bound: stuck in C code
        self.workers = [self._start() for _ in range(n)]

    def _start(self):
        slot = self.ctx.Array("q", 4, lock=False)
        process = self.ctx.Process(target=_worker, args=(self.tasks, self.results, slot, self.timeout, self.memory),
                                   daemon=True)
        process.start()
        return process, slot

    def check(self, done: set) -> list:
        """(kind, seed, outcome, detail) for cases whose worker died or hung; those workers are replaced."""
        lost = []
        for i, (process, slot) in enumerate(self.workers):
            started = slot[3]
            hung = process.is_alive() and started and time.time() - started / 1000 > self.grace
            if process.is_alive() and not hung:
                continue
            if hung:
                process.kill()
            process.join()
            kind, seed, stop = self.kinds[slot[0]], slot[1], slot[2]
            if started and (kind, seed) not in done:
                detail = (f"no answer for {self.grace:.0f} s: worker killed" if hung
                          else f"worker died with exit code {process.exitcode}")
                lost.append((kind, seed, "hang" if hung else "crash", detail))
                if seed + 1 < stop:
                    self.tasks.put((kind, seed + 1, stop))
            self.workers[i] = self._start()
        return lost

    def close(self) -> None:
        for _ in self.workers:
            self.tasks.put(None)
        for process, _ in self.workers:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()


# --------------------------------------------------------------------------------------- main
def run(cases: int, kinds: list, workers: int, timeout: float, memory: int, offset: int, progress: bool) -> dict:
    per_kind = -(-cases // len(kinds))
    pool = Pool(workers, timeout, memory, _all_kinds())
    for start in range(offset, offset + per_kind, CHUNK):
        for kind in kinds:
            pool.tasks.put((kind, start, min(start + CHUNK, offset + per_kind)))
    table = {kind: collections.Counter() for kind in kinds}
    bugs, done = [], set()
    total, t0, last = per_kind * len(kinds), time.time(), 0.0
    try:
        while len(done) < total:
            try:
                events = [pool.results.get(timeout=1.0)]
            except queue.Empty:
                events = []
            events += pool.check(done)
            for kind, seed, outcome, detail in events:
                if (kind, seed) in done:
                    continue
                done.add((kind, seed))
                table[kind][outcome] += 1
                if outcome in BUGS:
                    bugs.append({"kind": kind, "seed": seed, "outcome": outcome, "detail": detail})
            if progress and time.time() - last > 10:
                last = time.time()
                print(f"  {len(done)}/{total} cases, {len(bugs)} bugs, {len(done) / (last - t0):.0f} cases/s",
                      file=sys.stderr, flush=True)
    finally:
        pool.close()
    return {"table": {k: dict(v) for k, v in table.items()}, "bugs": bugs, "seconds": round(time.time() - t0, 1)}


def format_table(table: dict) -> str:
    rows = [["kind", "cases", *OUTCOMES]]
    totals = collections.Counter()
    for kind, counts in table.items():
        totals.update(counts)
        rows.append([kind, sum(counts.values()), *(counts.get(o, 0) for o in OUTCOMES)])
    rows.append(["total", sum(totals.values()), *(totals.get(o, 0) for o in OUTCOMES)])
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None) -> int:
    kinds = _kinds()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000, help="total cases, split evenly over the kinds")
    parser.add_argument("--kinds", nargs="+", choices=kinds, default=kinds)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--memory-gib", type=float, default=4.0, help="address-space cap per worker (0: none)")
    parser.add_argument("--offset", type=int, default=0, help="first seed (to explore past an earlier run)")
    parser.add_argument("--report", help="write the table and the bug cases to this JSON file")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.cases, args.kinds, args.workers, args.timeout, int(args.memory_gib * 2**30), args.offset,
                 not args.quiet)
    command = "python scripts/fuzz_long.py " + " ".join(argv if argv is not None else sys.argv[1:])
    header = (f"workbench fuzzing, {datetime.date.today().isoformat()}, commit {_commit()}, {args.workers} workers, "
              f"{result['seconds']:.0f} s\n{command}\n")
    print(header + format_table(result["table"]))
    for bug in result["bugs"][:20]:
        print(f"\n{bug['outcome']}: run_case({bug['kind']!r}, {bug['seed']})\n{bug['detail'][:1500]}")
    if args.report:
        Path(args.report).write_text(json.dumps({"command": command, "date": datetime.date.today().isoformat(),
                                                 "commit": _commit(), "workers": args.workers, **result}, indent=1))
    return 1 if result["bugs"] else 0


if __name__ == "__main__":
    sys.exit(main())
