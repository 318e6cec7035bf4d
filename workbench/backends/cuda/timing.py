"""Timing candidates on the device, and the on-disk timing cache.

A candidate is timed the way the runtime runs it: captured into a CUDA graph and replayed between
two CUDA events, so Python launch overhead (which graph replay removes) does not decide between
tactics. Candidates that cannot be captured are timed eagerly and marked not graph-safe.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from ...fileio import atomic_write
from .device import cp

INNER = 3     # calls per graph replay
WARMUP = 2    # replays before timing


def capture(stream, fn):
    """(graph, fn's result) with fn's device work captured on `stream`; the capture is ended on error."""
    stream.begin_capture()
    try:
        result = fn()
    except BaseException:
        with contextlib.suppress(Exception):
            stream.end_capture()
        raise
    return stream.end_capture(), result


def measure(kernel, args: list, dev, iterations: int) -> tuple:
    """(median milliseconds per call, graph-safe?) for a kernel on these arguments."""
    scratch = cp.cuda.MemoryPool()  # captured addresses belong to this measurement only
    with dev.active(scratch):
        graph = None
        if kernel.graph_safe:
            try:
                graph, _ = capture(dev.stream, lambda: [kernel(args) for _ in range(INNER)])
            except Exception:  # noqa: BLE001 - not capturable: time it eagerly
                graph = None
        run = (lambda: graph.launch(dev.stream)) if graph is not None else (lambda: [kernel(args) for _ in range(INNER)])
        for _ in range(WARMUP):
            run()
        events = [(cp.cuda.Event(), cp.cuda.Event()) for _ in range(iterations)]
        for start, stop in events:
            start.record(dev.stream)
            run()
            stop.record(dev.stream)
        dev.synchronize()
        times = sorted(cp.cuda.get_elapsed_time(a, b) / INNER for a, b in events)
    captured = graph is not None
    del graph, run  # the graph holds addresses in `scratch`: drop it before freeing the pool
    scratch.free_all_blocks()
    return times[len(times) // 2], captured


def default_path() -> str:
    base = os.environ.get("WORKBENCH_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "workbench"))
    return os.path.join(base, "cuda-timing.json")


class TimingCache:
    """{device key: {site key: {"tactic", "params", "ms", "timings", "excluded"}}} in one JSON file.

    A missing or unreadable file starts an empty cache (with a note); saving is atomic.
    """

    FORMAT = 1

    def __init__(self, path: str | None, device: str):
        self.path, self.device, self.note = path, device, None
        self.entries: dict = {}
        self._others: dict = {}  # other devices' entries, kept when saving
        self.dirty = False
        if path and os.path.exists(path):
            try:
                data = json.loads(Path(path).read_text())
                if data.get("format") == self.FORMAT:
                    self.entries = data.get("devices", {}).get(device, {})
                    self._others = {k: v for k, v in data.get("devices", {}).items() if k != device}
                else:
                    self.note = f"timing cache {path} has another format; starting a new one"
            except (OSError, ValueError, AttributeError) as e:
                self.note = f"timing cache {path} is unreadable ({e}); starting a new one"

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, key: str, entry: dict) -> None:
        self.entries[key] = entry
        self.dirty = True

    def save(self) -> None:
        if not self.path or not self.dirty:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        devices = dict(self._others)
        devices[self.device] = self.entries
        atomic_write(self.path, json.dumps({"format": self.FORMAT, "devices": devices}), "timing cache")
        self.dirty = False
