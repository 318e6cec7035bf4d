"""The build-time tactic search: run the network once on the device, layer by layer, choosing as it goes.

For each layer, on the real activations of a random input at the profile's opt shapes:
  1. a decision for the same signature (this build, or the timing cache on disk) is reused;
  2. otherwise every candidate of every tactic that applies is prepared and run; its outputs are
     checked against the CPU backend's answer (computed on the host when the layer is small enough,
     else against the first candidate that ran), then timed (CUDA-graph replays, CUDA events);
  3. the fastest correct candidate wins; the rest are logged with their times or why they were dropped.
A candidate that fails to compile, launch or verify is dropped with a note, never a crashed build.
"""
from __future__ import annotations

import time

import numpy as np

from ...builder.precision import storage_dtypes, stored_weights
from ...builder.profiles import resolve_profiles
from ...dtypes import np_dtype
from ...errors import BuildError, WorkbenchError
from ..cpu.evaluate import resolve
from .device import Device, Shared, device_key, to_device
from .generic import cost, reference
from .site import make_site, mismatch
from .tactics import EXHAUSTIVE_LEVEL, TACTICS, candidates_for, label, load_all
from .timing import TimingCache, default_path, measure

CHEAP_COST = 1e9          # layers up to this work get a host (CPU-kernel) reference
CHEAP_ELEMENTS = 1 << 24  # ... and up to this many input elements
BUILD_TOLERANCE_SCALE = 3.0  # GPU vs CPU float32 summation orders differ; tests use the strict bound
FALLBACKS = ("generic", "host")
# Without a host reference the first candidate that runs is the reference: let it be a vendor library,
# or a quantized tactic that is exact against the CPU's integer kernels.
REFERENCE_FIRST = ("cublas", "cudnn", "int8-gemm", "int8-conv", "fp8-conv")


def select(net, precisions: dict, cfg, log: dict) -> dict:
    """{layer name: tactic name}; recipes go to log["tactic_params"], timings and exclusions to the log."""
    search = Search(net, precisions, cfg, log)
    try:
        return search.run()
    finally:
        search.close()


def random_feeds(net, shapes: dict, seed=None) -> dict:
    """Fresh random inputs: normal floats, integers in {0, 1} (valid ids, masks and indices), random bools."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name in net.inputs:
        dtype = np_dtype(net.tensors[name].dtype)
        shape = tuple(int(d) for d in shapes[name])
        if dtype.kind == "f" or dtype.name == "bfloat16":
            feeds[name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[name] = rng.random(shape) < 0.5
        else:
            feeds[name] = rng.integers(0, 2, shape).astype(dtype)
    return feeds


def _short(e: Exception) -> str:
    text = f"{type(e).__name__}: {e}".replace("\n", " ")
    return text[:300] + ("..." if len(text) > 300 else "")


class Search:
    def __init__(self, net, precisions: dict, cfg, log: dict):
        load_all()
        self.net, self.precisions, self.cfg, self.log = net, precisions, cfg, log
        self.storage = storage_dtypes(net, precisions)
        self.shared = Shared(stored_weights(net, precisions))
        self.dev = Device(self.shared)
        self.dev.workspace_limit = cfg.workspace
        self.cache = TimingCache(cfg.timing_cache or default_path(), device_key())
        if self.cache.note:
            log["notes"].append(self.cache.note)
        self.level = int(cfg.builder_optimization_level)
        self.memo: dict = {}
        self.params: dict = {}
        self.counts = {"cached": 0, "timed": 0, "reused": 0}

    def close(self) -> None:
        self.dev.synchronize()
        self.cache.save()
        self.dev.close()  # the build's library handles and plans: the engine's contexts make their own
        self.shared.pool.free_all_blocks()

    def run(self) -> dict:
        net = self.net
        t0 = time.perf_counter()
        profile = resolve_profiles(net, self.cfg)[0]
        feeds = random_feeds(net, {name: triple[1] for name, triple in profile.items()})
        last_use = {n: i for i, layer in enumerate(net.layers) for n in layer.inputs if n}
        keep = set(net.outputs) | set(net.inputs) | set(net.weights)
        tactics = {}
        with self.dev.active():
            env = dict(self.shared.weights)
            env.update({k: to_device(v) for k, v in feeds.items()})
            for i, layer in enumerate(net.layers):
                args = [env[n] if n else None for n in layer.inputs]
                name, outs = self.choose(layer, args)
                tactics[layer.name] = name
                for out, value in zip(layer.outputs, outs):
                    if out:
                        env[out] = value
                for n in set(layer.inputs) | set(layer.outputs):
                    if n and n not in keep and last_use.get(n, -1) <= i:
                        env.pop(n, None)
        self.log["tactic_params"] = self.params
        self.log["notes"].append(
            f"cuda tactics for {len(net.layers)} layers in {time.perf_counter() - t0:.1f} s: "
            f"{self.counts['timed']} signatures timed, {self.counts['reused']} reused within the build, "
            f"{self.counts['cached']} from the timing cache ({self.cache.path})")
        return tactics

    def site_of(self, layer, args):
        _, attrs = resolve(layer)
        net = self.net
        dtypes = [(self.storage.get(o) or net.tensors[o].dtype) if o else "" for o in layer.outputs]
        return make_site(layer, attrs, args, self.precisions[layer.name], dtypes, net.weights, net.opset)

    def choose(self, layer, args) -> tuple:
        """(tactic name, outputs) for one layer; records the recipe, timings and exclusions."""
        site = self.site_of(layer, args)
        key = site.key()
        for source, entry in (("reused", self.memo.get(key)), ("cached", self.cache.get(key))):
            if entry is None:
                continue
            try:
                kernel = TACTICS[entry["tactic"]].prepare(site, entry["params"], self.dev)
                outs = kernel(args)
            except Exception as e:  # noqa: BLE001 - a stale decision: search again
                self.log["notes"].append(f"layer {layer.name!r}: {source} tactic {entry['tactic']} failed "
                                         f"({_short(e)}); searching again")
                continue
            self.counts[source] += 1
            self.memo[key] = entry
            return self._record(layer, entry, source), outs
        entry, outs = self.search(layer, site, args)
        self.memo[key] = entry
        if self.level > 0:
            self.cache.put(key, entry)
        self.counts["timed"] += 1
        return self._record(layer, entry, "timed"), outs

    def _record(self, layer, entry: dict, source: str) -> str:
        self.params[layer.name] = entry["params"]
        if entry.get("timings"):
            self.log["timings"][layer.name] = dict(entry["timings"])
        if entry.get("excluded"):
            self.log["excluded"][layer.name] = dict(entry["excluded"])
        return entry["tactic"]

    def search(self, layer, site, args) -> tuple:
        cands, excluded = candidates_for(site, self.level)
        ref, trusted = self._reference(layer, site, args, excluded)
        if ref is None:
            cands.sort(key=lambda c: c[0].name not in REFERENCE_FIRST)
        timings, best = {}, None
        for tac, params in cands:
            lab = label(tac.name, params)
            if tac.name in FALLBACKS and best is not None and (best[1].name not in FALLBACKS or self.level == 0):
                continue  # a device tactic already works: the fallbacks cannot win
            if params.get("fallback") and best is not None and self.level < EXHAUSTIVE_LEVEL:
                continue  # a variant kept for when the preferred forms fail (e.g. cuDNN's unfused conv)
            try:
                kernel = tac.prepare(site, params, self.dev)
                outs = kernel(args)
                self.dev.synchronize()
            except Exception as e:  # noqa: BLE001 - dropped with a note, never a crashed build
                excluded[lab] = _short(e)
                continue
            why = mismatch(outs, ref, site.precision, BUILD_TOLERANCE_SCALE) if ref is not None else None
            if why:
                excluded[lab] = f"wrong result: {why}"
                continue
            if ref is None:
                ref, trusted = outs, lab
            if self.level == 0:
                best = (0.0, tac, params, outs)
                break
            try:
                iters = 1 if tac.name == "host" else self.cfg.timing_iterations  # host copies are slow to time
                ms, safe = measure(kernel, args, self.dev, iters)
            except Exception as e:  # noqa: BLE001
                excluded[lab] = f"timing failed: {_short(e)}"
                continue
            params = dict(params, graph_safe=False) if not safe else params
            timings[lab] = round(ms, 6)
            if best is None or ms < best[0]:
                best = (ms, tac, params, outs)
        if best is None:
            raise BuildError(f"layer {layer.name!r} ({layer.op}): no CUDA tactic ran on inputs "
                             f"{[i[:2] if i else None for i in site.inputs]}: {excluded}")
        ms, tac, params, outs = best
        entry = {"tactic": tac.name, "params": params, "ms": ms, "timings": timings, "excluded": excluded}
        if trusted:
            entry["reference"] = trusted
        return entry, outs

    def _reference(self, layer, site, args, excluded) -> tuple:
        """(host reference outputs or None, what they came from)."""
        elements = sum(int(np.prod(i[0])) for i in site.inputs if i)
        if cost(site) > CHEAP_COST or elements > CHEAP_ELEMENTS:
            return None, None
        try:
            return reference(site, args), "cpu"
        except WorkbenchError as e:
            raise type(e)(f"layer {layer.name!r} ({layer.op}) fails on the CPU backend too: {e}") from None
        except Exception as e:  # noqa: BLE001 - the CPU kernel itself could not run these inputs
            excluded["cpu-reference"] = _short(e)
            return None, None

