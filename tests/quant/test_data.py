"""Calibration data: the sources it accepts and the clear errors on bad data, before any work."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ConfigError, ShapeError
from workbench.quant.calibrators import MinMaxCalibrator
from workbench.quant.data import CalibrationData

from .helpers import batches, elementwise_net


def scales_of(data, **kw):
    return MinMaxCalibrator(data, progress=False, **kw).calibrate(elementwise_net())


def test_sources_agree(tmp_path):
    data = batches(n=3)
    want = scales_of(data)
    for i, b in enumerate(data):
        np.save(tmp_path / f"b{i}.npy", b["x"])
        np.savez(tmp_path / f"c{i}.npz", **b)
    it = iter(data)
    assert scales_of((b for b in data)) == want                              # a generator
    assert scales_of([b["x"] for b in data]) == want                         # arrays, one-input network
    assert scales_of(lambda: next(it, None)) == want                         # TensorRT's get_batch
    assert scales_of(lambda: data) == want                                   # a callable giving an iterable
    assert scales_of(str(tmp_path)) == scales_of(tmp_path) == want           # a folder: .npy and .npz
    assert scales_of({"x": np.concatenate([b["x"] for b in data])}, batch_size=5) == want


def test_batch_size_splits():
    data = CalibrationData({"x": np.zeros((10, 16), np.float32)}, batch_size=4)
    assert [b["x"].shape[0] for b in data.raw_batches()] == [4, 4, 2]
    with pytest.raises(ConfigError, match="batch_size"):
        CalibrationData([], batch_size=0)


@pytest.mark.parametrize("data, error, match", [
    ([], ConfigError, "calibration data is empty"),
    (lambda: None, ConfigError, "empty"),
    ([{"y": np.zeros((2, 16), np.float32)}], ConfigError, r"missing \['x'\], unknown \['y'\]"),
    ([{"x": np.zeros((2, 16), np.float64)}], ShapeError, "dtype float64, the network takes float32"),
    ([{"x": np.zeros((2, 15), np.float32)}], ShapeError, "dim 1 is 15"),
    ([{"x": np.zeros((2, 16, 1), np.float32)}], ShapeError, "rank 3"),
    ([{"x": np.zeros((0, 16), np.float32)}], ConfigError, "is empty"),
    ([{"x": np.ones((2, 16), np.float32)}, {"x": np.full((2, 16), np.nan, np.float32)}], ConfigError,
     "batch 1, input 'x' holds 32 NaN/Inf"),
    ([{"x": np.array([[np.inf] + [0.0] * 15], np.float32)}], ConfigError, "NaN/Inf"),
    (["not a batch"], ConfigError, "batch 0 is a str"),
    (42, ConfigError, "must be an iterable"),
])
def test_bad_data_is_a_clear_error(data, error, match):
    with pytest.raises(error, match=match):
        MinMaxCalibrator(data, progress=False).check(elementwise_net())


def test_symbolic_dims_must_agree_within_a_batch():
    from workbench.ir import Network

    net = Network("two")
    a, b = net.add_input("a", "float32", ("batch", 2)), net.add_input("b", "float32", ("batch", 2))
    net.mark_output(net.add_elementwise(a, b, "Add").output)
    with pytest.raises(ShapeError, match="'batch'.*is 3.*'batch' = 2"):
        CalibrationData([{"a": np.ones((2, 2), np.float32), "b": np.ones((3, 2), np.float32)}]).check(net)


def test_missing_folder_and_no_data(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        scales_of(tmp_path / "missing")
    with pytest.raises(ConfigError, match="no calibration data and no cache was given"):
        scales_of(None)
    with pytest.raises(ConfigError, match="calibration data is empty"):
        scales_of(tmp_path)  # an empty folder
