"""The calibration cache: round trip, reuse instead of calibrating, and refusals that say why."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ConfigError
from workbench.quant.cache import network_key, read_cache, read_header, write_cache
from workbench.quant.calibrators import EntropyCalibrator, MinMaxCalibrator, PercentileCalibrator

from .helpers import batches, elementwise_net


def test_round_trip_is_exact_in_float32(tmp_path):
    net = elementwise_net()
    scales = {"x": 0.1, "scale_out": float(np.float32(1 / 3)), "relu out:0": 7e-5, "shift_out": 2.5}
    path = tmp_path / "m.calib"
    write_cache(path, scales, net, "EntropyCalibrator")
    back = read_cache(path, network_key(["x", "scale_out", "relu_out", "shift_out"]), "EntropyCalibrator")
    assert list(back) == list(scales)
    assert all(np.float32(back[k]) == np.float32(v) for k, v in scales.items())
    header = read_header(path)
    assert header["kind"] == "EntropyCalibrator" and header["version"] and header["network"] == network_key(net)
    assert [p.name for p in tmp_path.iterdir()] == ["m.calib"]  # no temporary file left behind


def test_cache_is_reused_without_data(tmp_path):
    net, path = elementwise_net(), tmp_path / "m.calib"
    first = EntropyCalibrator(batches(), cache=path, progress=False).calibrate(net)
    again = EntropyCalibrator(None, cache=path, progress=False)  # no data: the cache must serve
    assert again.calibrate(net) == first and again.from_cache


def test_cache_of_another_calibrator_is_refused(tmp_path):
    net, path = elementwise_net(), tmp_path / "m.calib"
    MinMaxCalibrator(batches(), cache=path, progress=False).calibrate(net)
    with pytest.raises(ConfigError, match="made by MinMaxCalibrator, not EntropyCalibrator"):
        EntropyCalibrator(batches(), cache=path, progress=False).calibrate(net)
    other = tmp_path / "p.calib"
    PercentileCalibrator(batches(), cache=other, percentile=99, progress=False).calibrate(net)
    with pytest.raises(ConfigError, match=r"made by PercentileCalibrator\(percentile=99\), not Percentile"):
        PercentileCalibrator(batches(), cache=other, percentile=99.9, progress=False).calibrate(net)


def test_cache_of_another_network_is_refused(tmp_path):
    path = tmp_path / "m.calib"
    MinMaxCalibrator(batches(), cache=path, progress=False).calibrate(elementwise_net())
    other = elementwise_net()
    other.layers[-1].outputs = ["logits"]
    other.tensors["logits"] = other.tensors.pop("shift_out")
    other.outputs = ["logits"]
    with pytest.raises(ConfigError, match=r"another network .*'shift_out'.*'logits'"):
        MinMaxCalibrator(batches(), cache=path, progress=False).calibrate(other)


@pytest.mark.parametrize("text, match", [
    ("hello\n", "not a workbench calibration cache"),
    ("workbench-calibration version=0.1.0 kind=X network=00ff\nx 0.5\n", "line 2"),
    ("workbench-calibration version=0.1.0 kind=X network=00ff\nx: -1\n", "positive scale"),
    ("workbench-calibration version=0.1.0 kind=X network=00ff\nx: nan\n", "positive scale"),
])
def test_malformed_cache_is_refused(tmp_path, text, match):
    path = tmp_path / "bad.calib"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        read_cache(path)


def test_write_into_missing_folder_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        write_cache(tmp_path / "nope" / "m.calib", {"x": 1.0}, "00ff", "EntropyCalibrator")
