"""Calibration data: batches of {input name: array}, from whatever the user has, checked up front.

Sources: an iterable of batches (dicts, or arrays for a one-input network), one dict or array
(split into `batch_size` pieces), a folder of .npz (one batch per file, keys = input names) or
.npy files (one batch of the single input per file), or a callable returning the next batch and
None when done (TensorRT's get_batch) or returning an iterable of batches.

    >>> data = CalibrationData(d.x_calib, batch_size=32)
    >>> batches = data.check(network)     # ConfigError/ShapeError naming the batch and input at fault
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..dtypes import np_dtype
from ..errors import ConfigError, ShapeError

MAX_CALLS = 1_000_000  # a get_batch callable that never returns None is a bug, not a data set


class CalibrationData:
    """Calibration batches from an iterable, a dict/array, a folder or a callable."""

    def __init__(self, source, batch_size: int | None = None):
        if isinstance(source, CalibrationData):
            source, batch_size = source.source, batch_size or source.batch_size
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ConfigError(f"calibration batch_size must be a positive int, got {batch_size!r}")
        self.source, self.batch_size = source, batch_size
        self._batches: list | None = None

    def raw_batches(self) -> list:
        """The batches as given (read once, then kept), split to batch_size when one is set."""
        if self._batches is None:
            batches = _read(self.source)
            self._batches = _split(batches, self.batch_size) if self.batch_size else batches
        return self._batches

    def check(self, net) -> list:
        """The batches as {input: array} dicts matching `net`'s inputs; a clear error otherwise."""
        batches = self.raw_batches()
        if not batches:
            raise ConfigError(f"calibration data is empty ({_describe(self.source)}): give at least one batch "
                              f"of {{input name: array}} for inputs {net.inputs}")
        return [_check_batch(i, b, net) for i, b in enumerate(batches)]

    def __len__(self) -> int:
        return len(self.raw_batches())


def batch_profile(net, batches: list) -> dict:
    """An optimization profile {input: (min, opt=max, max)} covering every (checked) batch's shapes."""
    profile = {}
    for name in net.inputs:
        shapes = np.array([b[name].shape for b in batches])
        lo, hi = tuple(int(d) for d in shapes.min(0)), tuple(int(d) for d in shapes.max(0))
        profile[name] = (lo, hi, hi)
    return profile


def _describe(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"folder {source}"
    return type(source).__name__


def _read(source) -> list:
    if source is None:
        raise ConfigError("no calibration data: give batches, a folder of .npy/.npz files or a callable "
                          "(or a cache file that already holds the scales)")
    if isinstance(source, (str, os.PathLike)):
        return _read_folder(Path(source))
    if isinstance(source, (dict, np.ndarray)):
        return [source]
    if callable(source):
        return _read_callable(source)
    try:
        return list(source)
    except TypeError:
        raise ConfigError(f"calibration data must be an iterable of {{input: array}} batches, a folder, "
                          f"an array or a callable, not {type(source).__name__}") from None


def _read_folder(folder: Path) -> list:
    if not folder.is_dir():
        raise ConfigError(f"calibration folder {folder} does not exist (or is not a folder)")
    files = sorted(p for p in folder.iterdir() if p.suffix in (".npy", ".npz"))
    batches = []
    for path in files:
        try:
            if path.suffix == ".npy":
                batches.append(np.load(path, allow_pickle=False))
            else:
                with np.load(path, allow_pickle=False) as z:
                    batches.append({k: z[k] for k in z.files})
        except (OSError, ValueError) as e:
            raise ConfigError(f"calibration file {path} cannot be read as a NumPy file: {e}") from None
    return batches


def _read_callable(fn) -> list:
    first = fn()
    if first is None:
        return []
    if not isinstance(first, (dict, np.ndarray)):
        return _read(first)  # the callable returned an iterable of batches
    batches = [first]
    for _ in range(MAX_CALLS):
        nxt = fn()
        if nxt is None:
            return batches
        batches.append(nxt)
    raise ConfigError(f"the calibration callable returned {MAX_CALLS} batches without returning None; "
                      f"return None when the data is exhausted")


def _split(batches: list, size: int) -> list:
    out = []
    for b in batches:
        if isinstance(b, dict):
            n = min((np.shape(v)[0] for v in b.values() if np.ndim(v) > 0), default=0)
            out.extend({k: v[i:i + size] for k, v in b.items()} for i in range(0, n, size))
        elif isinstance(b, np.ndarray) and b.ndim > 0:
            out.extend(b[i:i + size] for i in range(0, len(b), size))
        else:
            out.append(b)
    return out


def _check_batch(index: int, batch, net) -> dict:
    where = f"calibration batch {index}"
    if isinstance(batch, np.ndarray) and len(net.inputs) == 1:
        batch = {net.inputs[0]: batch}
    if not isinstance(batch, dict):
        raise ConfigError(f"{where} is a {type(batch).__name__}; each batch must be a dict {{input name: array}}"
                          + (f" (or an array, for this one-input network)" if len(net.inputs) == 1 else ""))
    missing, unknown = sorted(set(net.inputs) - set(batch)), sorted(set(batch) - set(net.inputs))
    if missing or unknown:
        raise ConfigError(f"{where}: input names do not match the network: missing {missing}, unknown {unknown}; "
                          f"the network's inputs are {net.inputs}")
    bound: dict = {}
    return {name: _check_array(where, name, batch[name], net.tensors[name], bound) for name in net.inputs}


def _check_array(where: str, name: str, value, tensor, bound: dict) -> np.ndarray:
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    want = np_dtype(tensor.dtype)
    if arr.dtype != want:
        raise ShapeError(f"{where}, input {name!r}: dtype {arr.dtype}, the network takes {tensor.dtype}; "
                         f"convert with x.astype(np.{tensor.dtype})")
    _check_shape(where, name, arr.shape, tensor.shape, bound)
    if arr.size == 0:
        raise ConfigError(f"{where}, input {name!r} is empty (shape {arr.shape}); calibration needs data")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ConfigError(f"{where}, input {name!r} holds {bad} NaN/Inf values; calibration needs finite data "
                          f"(clean or drop that batch)")
    return arr


def _check_shape(where: str, name: str, shape: tuple, declared, bound: dict) -> None:
    """Fixed dims must match; a symbolic dim must take one value across the inputs of a batch."""
    if declared is None:
        return
    if len(shape) != len(declared):
        raise ShapeError(f"{where}, input {name!r}: shape {shape} has rank {len(shape)}, the network declares "
                         f"{tuple(declared)}")
    for i, (got, want) in enumerate(zip(shape, declared)):
        if isinstance(want, int) and got != want:
            raise ShapeError(f"{where}, input {name!r}: dim {i} is {got}, the network declares {tuple(declared)}")
        if isinstance(want, str) and bound.setdefault(want, got) != got:
            raise ShapeError(f"{where}, input {name!r}: dim {i} ({want!r}) is {got}, but another input of "
                             f"the batch has {want!r} = {bound[want]}")
