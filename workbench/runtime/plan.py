"""The plan file: one file holding an engine, safe to load from untrusted sources.

Layout (little endian):
    MAGIC (8 bytes) | format version (u32) | header length (u64) | header (UTF-8 JSON)
    | padding to 64 | weights blob | SHA-256 of everything before it (32 bytes)

The header holds the graph, tactics, precisions, profiles, memory plan, build config, device
and provenance; weights are raw little-endian arrays. Nothing is pickled and nothing in a plan
is ever executed: kernels are rebuilt from recipes by workbench's own code.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import struct
from pathlib import Path

import numpy as np

from .. import __version__
from ..builder.config import MAX_THREADS, PRECISIONS, BuilderConfig
from ..builder.memory import MemoryPlan
from ..dtypes import _EXTRA, np_dtype
from ..errors import PlanFormatError, PluginError, WorkbenchError
from ..fileio import atomic_write
from ..ir import Layer, Network, Tensor
from ..ir.network import MAX_SUBGRAPH_DEPTH
from .engine import Engine

MAGIC = b"WBPLAN\r\n"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sIQ")
_DIGEST = 32
_ALIGN = 64


# ---------------------------------------------------------------------------------- writing
def serialize(engine: Engine) -> bytes:
    net = engine.network
    blob, entries = bytearray(), []
    for path, graph in graphs(net):
        for name, w in graph.weights.items():
            arr = np.asarray(w)  # not ascontiguousarray: it turns 0-d weights into 1-d
            blob.extend(b"\0" * (-len(blob) % _ALIGN))
            entry = {"name": name, "dtype": arr.dtype.name, "shape": list(arr.shape), "offset": len(blob),
                     "nbytes": arr.nbytes}
            entries.append({**entry, "graph": path} if path else entry)
            blob.extend(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
    header = {
        "workbench_version": __version__, "format_version": FORMAT_VERSION, "backend": engine.backend,
        "device": engine.device, "config": engine.config, "report": engine.report,
        "network": _network_to_json(net), "weights": entries,
        "precisions": engine.precisions, "tactics": engine.tactics, "tactic_params": engine.tactic_params,
        "storage_dtypes": engine.storage_dtypes,
        "profiles": [{k: [list(s) for s in v] for k, v in p.items()} for p in engine.profiles],
        "memory": engine.memory.to_dict(),
        "plugins": sorted({l.op for _, g in graphs(net) for l in g.layers if l.domain == "workbench.plugin"}),
    }
    head = json.dumps(header, default=_json_default, separators=(",", ":")).encode()
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(head)) + head
    body += b"\0" * (-len(body) % _ALIGN) + bytes(blob)
    return body + hashlib.sha256(body).digest()


def save_plan(engine: Engine, path) -> None:
    """Write the plan file atomically: an interrupted save leaves any earlier file intact."""
    try:
        atomic_write(path, serialize(engine), "plan")
    except WorkbenchError as e:
        raise PlanFormatError(str(e)) from None


def _json_default(o):
    if isinstance(o, np.ndarray):
        return {"__ndarray__": o.dtype.name, "shape": list(o.shape),
                "data": base64.b64encode(o.tobytes()).decode()}
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (tuple, set, frozenset)):
        return list(o)
    raise TypeError(f"cannot store {type(o).__name__} in a plan header")


def graphs(net: Network, path: tuple = ()):
    """(path, graph) of the network and of every subgraph in it, depth first; a subgraph's path is the
    (layer name, attribute name) pairs leading to it, flattened: the namespace of its weights in a plan."""
    yield list(path), net
    for layer in net.layers:
        for key, sub in layer.subgraphs():
            yield from graphs(sub, (*path, layer.name, key))


def _network_to_json(net: Network) -> dict:
    """The graph as JSON (weights apart); subgraph attributes are nested {"__network__": {...}}."""
    return {"name": net.name, "inputs": net.inputs, "outputs": net.outputs, "opset": net.opset,
            "metadata": net.metadata,
            "tensors": [[t.name, t.dtype, list(t.shape) if t.shape is not None else None]
                        for t in net.tensors.values()],
            "layers": [{"name": l.name, "op": l.op, "domain": l.domain, "inputs": l.inputs, "outputs": l.outputs,
                        "attrs": {k: {"__network__": _network_to_json(v)} if isinstance(v, Network) else v
                                  for k, v in l.attrs.items()},
                        "fused": l.fused} for l in net.layers]}


# ---------------------------------------------------------------------------------- reading
def load_plan(source) -> Engine:
    """Read a plan file (path or bytes) into an Engine; PlanFormatError says what is wrong with it.

    >>> engine = load_plan("model.plan")
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, where = bytes(source), "plan bytes"
    else:
        path = Path(source)
        if not path.is_file():
            raise PlanFormatError(f"{path}: no such plan file")
        data, where = path.read_bytes(), str(path)
    return deserialize(data, where)


def deserialize(data: bytes, where: str = "plan") -> Engine:
    header, blob = _split(data, where)
    try:
        net = _network_from_json(header["network"], _weights(header["weights"], blob, where))
        _check_plugins(header.get("plugins", []), where)
        memory = MemoryPlan(**header["memory"])
        profiles = [{k: tuple(tuple(int(d) for d in s) for s in v) for k, v in p.items()}
                    for p in header["profiles"]]
        engine = Engine(net, header["backend"], dict(header["precisions"]), dict(header["tactics"]), profiles,
                        memory, header["config"], header["device"], header["report"],
                        dict(header.get("tactic_params", {})), dict(header.get("storage_dtypes", {})))
        net.validate()
        _check_engine(engine, where)
    except PluginError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise PlanFormatError(f"{where}: the plan header is inconsistent ({type(e).__name__}: {e}); "
                              f"rebuild the plan") from None
    except Exception as e:  # noqa: BLE001 - a checksummed but wrong plan must still fail cleanly
        if isinstance(e, PlanFormatError):
            raise
        raise PlanFormatError(f"{where}: the plan cannot be loaded: {e}; rebuild the plan") from None
    return engine


def _split(data: bytes, where: str):
    if len(data) < _PREFIX.size + _DIGEST:
        raise PlanFormatError(f"{where}: {len(data)} bytes is too short for a plan file (truncated?)")
    magic, version, head_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise PlanFormatError(f"{where}: not a workbench plan file (bad magic {magic!r}); give the path of a "
                              f"plan written by engine.save() or `workbench build`")
    if version > FORMAT_VERSION:
        raise PlanFormatError(f"{where}: plan format version {version} is newer than this workbench reads "
                              f"({FORMAT_VERSION}); upgrade workbench or rebuild the plan")
    if version < 1:
        raise PlanFormatError(f"{where}: plan format version {version} is not valid")
    if _PREFIX.size + head_len + _DIGEST > len(data):
        raise PlanFormatError(f"{where}: the header claims {head_len} bytes but the file has only {len(data)} "
                              f"(truncated or corrupted); copy the plan again or rebuild it")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise PlanFormatError(f"{where}: checksum mismatch: the file is corrupted or was modified; rebuild it")
    try:
        header = json.loads(body[_PREFIX.size:_PREFIX.size + head_len].decode("utf-8"),
                            object_hook=_json_object)
    except (ValueError, TypeError, KeyError, RecursionError) as e:  # a bad array entry; absurdly nested JSON
        raise PlanFormatError(f"{where}: the plan header is not valid JSON ({type(e).__name__}: {e}); "
                              f"rebuild the plan") from None
    start = _PREFIX.size + head_len
    start += -start % _ALIGN
    return header, memoryview(body)[start:]


def _json_object(d: dict):
    if "__ndarray__" in d:
        arr = np.frombuffer(base64.b64decode(d["data"]), dtype=np_dtype(d["__ndarray__"]))
        return arr.reshape(d["shape"]).copy()
    return d


def _weights(entries: list, blob, where: str) -> dict:
    """{graph path (a tuple; () for the main graph): {weight name: array}} from the weights section."""
    weights: dict = {}
    for e in entries:
        if not _is_dtype(e["dtype"]):
            raise PlanFormatError(f"{where}: weight {e['name']!r} has dtype {e['dtype']!r}, not a numeric type; "
                                  f"the plan is corrupted or forged: rebuild it")
        dtype = np_dtype(e["dtype"])
        shape = tuple(int(d) for d in e["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        offset, nbytes = int(e["offset"]), int(e["nbytes"])
        if count < 0 or nbytes != count * dtype.itemsize or offset < 0 or offset + nbytes > len(blob):
            raise PlanFormatError(f"{where}: weight {e['name']!r} ({e['dtype']}{list(shape)}) claims bytes "
                                  f"{offset}..{offset + nbytes} of a {len(blob)}-byte weights section; the plan "
                                  f"is corrupted: rebuild it")
        arr = np.frombuffer(blob, dtype=dtype.newbyteorder("<"), count=count, offset=offset)
        path = tuple(str(p) for p in e.get("graph", ()))
        weights.setdefault(path, {})[e["name"]] = arr.astype(dtype, copy=False).reshape(shape)
    return weights


def _network_from_json(d: dict, weights: dict, path: tuple = ()) -> Network:
    """The graph at `path` (subgraphs rebuilt recursively, at most MAX_SUBGRAPH_DEPTH deep)."""
    if len(path) > 2 * MAX_SUBGRAPH_DEPTH:
        raise PlanFormatError(f"subgraphs are nested more than {MAX_SUBGRAPH_DEPTH} deep")
    tensors = {}
    for name, dtype, shape in d["tensors"]:
        np_dtype(dtype)
        tensors[name] = Tensor(str(name), str(dtype), tuple(shape) if shape is not None else None)
    layers = []
    for l in d["layers"]:
        name = str(l["name"])
        attrs = {k: _network_from_json(v["__network__"], weights, (*path, name, k)) if _is_network(v) else v
                 for k, v in dict(l["attrs"]).items()}
        layers.append(Layer(name, str(l["op"]), list(l["inputs"]), list(l["outputs"]), attrs, str(l["domain"]),
                            list(l["fused"])))
    return Network(str(d["name"]), list(d["inputs"]), list(d["outputs"]), layers, tensors,
                   weights.get(path, {}), int(d["opset"]), dict(d.get("metadata", {})))


def _is_network(value) -> bool:
    return isinstance(value, dict) and set(value) == {"__network__"}


def _check_engine(engine: Engine, where: str) -> None:
    """Types and cross-references the runners rely on. The checksum stops accidents, not forgers: a
    hand-made header must fail here with a clear message rather than deep inside a backend."""
    net = engine.network
    edges = [*net.inputs, *net.outputs,
             *(n for layer in net.layers for n in [*layer.inputs, *layer.outer_reads(), *layer.outputs])]
    undeclared = sorted({n for n in edges if n and n not in net.tensors})
    bad_tensors = [t.name for t in net.tensors.values()
                   if not _is_dtype(t.dtype) or not (t.shape is None or all(_is_dim(d) for d in t.shape))]
    checks = [
        (all(isinstance(n, str) for n in edges), "tensor names must be strings"),
        (not undeclared, f"tensors {undeclared[:5]} are used by layers but not declared"),
        (not bad_tensors, f"tensors {bad_tensors[:5]} have a non-numeric dtype or an invalid shape"),
        (engine.backend in ("cpu", "cuda"), f"backend {engine.backend!r} is not cpu or cuda"),
        (all(isinstance(v, str) for v in engine.tactics.values()), "tactic names must be strings"),
        (all(v in PRECISIONS for v in engine.precisions.values()), f"precisions must be among {PRECISIONS}"),
        (all(_is_dtype(v) for v in engine.storage_dtypes.values()), "storage dtypes must be numeric types"),
        (all(isinstance(d, dict) for d in (engine.config, engine.device, engine.report, engine.tactic_params)),
         "config, device, report and tactic_params must be objects"),
        (_is_config(engine.config), "the build config has values a BuilderConfig refuses"),
        (_is_thread_count(engine.report.get("blas_threads", 1)), "the report's blas_threads is not a thread count"),
        (all(_is_profile(p, net.inputs) for p in engine.profiles),
         "each profile must give (min, opt, max) shapes of one rank for inputs of the network"),
    ]
    for ok, what in checks:
        if not ok:
            raise PlanFormatError(f"{where}: the plan header is inconsistent: {what}; rebuild the plan")


def _is_config(config) -> bool:
    """Whether the stored build config passes BuilderConfig's own checks (runners read its values)."""
    if not isinstance(config, dict):
        return False
    known = {f.name for f in dataclasses.fields(BuilderConfig)} - {"calibrator"}
    try:
        BuilderConfig(**{k: v for k, v in config.items() if k in known})
        return True
    except (WorkbenchError, TypeError, ValueError, AttributeError):
        return False


def _is_thread_count(n) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_THREADS


def _is_profile(profile: dict, inputs: list) -> bool:
    return set(profile) <= set(inputs) and all(
        len(triple) == 3 and len({len(s) for s in triple}) == 1 and all(d >= 0 for s in triple for d in s)
        for triple in profile.values())


def _is_dim(d) -> bool:
    return isinstance(d, str) or (isinstance(d, int) and not isinstance(d, bool) and d >= 0)


def _is_dtype(name) -> bool:
    """A numeric or bool dtype name (numpy's, or ml_dtypes' small floats and ints): never object or str."""
    if not isinstance(name, str):
        return False
    try:
        return name in _EXTRA or np_dtype(name).kind in "biufc"
    except Exception:  # noqa: BLE001 - anything np.dtype refuses is not a dtype
        return False


def _check_plugins(names: list, where: str) -> None:
    from ..plugins import lookup

    missing = [n for n in names if lookup(n) is None]
    if missing:
        raise PluginError(f"{where}: the plan uses plugin(s) {missing}, which are not registered in this process; "
                          f"import the code that registers them (@workbench.plugin) before loading")
