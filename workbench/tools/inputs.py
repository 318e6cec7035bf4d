"""Inputs for the tools: fresh random data of the right dtype and shape, and datasets cut into batches.

Random data is never all zeros (zeros hide wrong weights and skipped layers): floats are standard
normal, token ids are 1..99, token type / segment ids are 0 or 1, masks are ones.
"""
from __future__ import annotations

import numpy as np

from ..dtypes import np_dtype
from ..errors import ShapeError, WorkbenchError

TOKEN_ID_LIMIT = 100  # ids stay below this so any embedding table of a test model can take them


def random_tensor(name: str, dtype: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """One random input.  >>> random_tensor("input_ids", "int64", (2, 8), np.random.default_rng(0))"""
    dt = np_dtype(dtype)
    lowered = name.lower()
    if "mask" in lowered:
        return np.ones(shape, dt)
    if dt == np.bool_:
        return rng.random(shape) < 0.5
    if dt.kind in "iu":
        high = 2 if ("type" in lowered or "segment" in lowered) else TOKEN_ID_LIMIT
        low = 0 if high == 2 else 1
        return rng.integers(low, high, size=shape).astype(dt)
    return rng.standard_normal(shape).astype(np.float32).astype(dt)


def input_shape(spec, batch: int | None, default=None) -> tuple:
    """The concrete shape of one input: `default` (e.g. the profile's opt shape) or the declared shape,
    with dim 0 set to `batch` when given."""
    shape = tuple(default) if default is not None else spec.shape
    if shape is None:
        raise ShapeError(f"input {spec.name!r} has an unknown shape; pass inputs={{...}} explicitly")
    shape = list(shape)
    if batch is not None and shape:
        declared = spec.shape[0] if spec.shape else None
        if isinstance(declared, int) and declared != batch:
            raise ShapeError(f"input {spec.name!r} has a fixed batch of {declared}; batch={batch} cannot be used "
                             f"(re-export the model with a dynamic batch dim)")
        shape[0] = batch
    if shape and not isinstance(shape[0], int):
        shape[0] = 1  # an unbound batch dim with no batch asked for: one sample
    unknown = [d for d in shape if not isinstance(d, (int, np.integer))]
    if unknown:
        raise ShapeError(f"input {spec.name!r} has symbolic dims {unknown} ({tuple(spec.shape)}); pass "
                         f"inputs={{...}} with concrete arrays")
    return tuple(int(d) for d in shape)


def make_inputs(runner, batch: int | None = None, seed: int | None = None) -> dict:
    """Fresh random feeds for every input of `runner`, at the batch size asked for."""
    rng = np.random.default_rng(seed)
    defaults = runner.opt_shapes()
    feeds = {}
    for spec in runner.input_specs():
        if spec.dtype is None:
            raise ShapeError(f"{runner.name}: the dtype of input {spec.name!r} is unknown; pass inputs={{...}}")
        feeds[spec.name] = random_tensor(spec.name, spec.dtype, input_shape(spec, batch, defaults.get(spec.name)), rng)
    return feeds


def batch_of(feeds: dict) -> int:
    """The batch size of some feeds: dim 0 of the first input that has one."""
    for value in feeds.values():
        shape = getattr(value, "shape", ())
        if shape:
            return int(shape[0])
    return 1


def iter_dataset(dataset, input_names: list, batch: int = 32):
    """Yield (feeds, labels or None) from a dataset.

    A dataset is an (x, y) tuple of arrays (cut into batches of `batch`; single-input models), a dict
    {input: array} (one batch), or an iterable of batches, each a dict or a (feeds_or_array, labels) pair.
    """
    if isinstance(dataset, dict):
        dataset = [dataset]
    elif _is_xy(dataset):
        x, y = dataset
        dataset = [(x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)]
    count = 0
    for item in dataset:
        labels = None
        if isinstance(item, tuple) and len(item) == 2:
            item, labels = item
        yield _feeds(item, input_names), (np.asarray(labels) if labels is not None else None)
        count += 1
    if count == 0:
        raise WorkbenchError("the dataset is empty: give at least one batch (an (x, y) tuple of arrays with "
                             "at least one row, a dict of inputs, or an iterable of batches)")


def _is_xy(dataset) -> bool:
    return (isinstance(dataset, tuple) and len(dataset) == 2 and all(hasattr(a, "shape") for a in dataset)
            and len(dataset[0]) == len(dataset[1]))


def _feeds(item, input_names: list) -> dict:
    if isinstance(item, dict):
        return item
    if len(input_names) != 1:
        raise WorkbenchError(f"a dataset batch given as one array fits single-input models only; this one takes "
                             f"{input_names}: give each batch as a dict {{input: array}}")
    return {input_names[0]: np.asarray(item)}
