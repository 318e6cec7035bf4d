"""The quantization options shared by the command line and the notebook (quant/options.py)."""
from __future__ import annotations

import pytest

from workbench.errors import ConfigError
from workbench.quant import MinMaxCalibrator, PercentileCalibrator
from workbench.quant.options import layer_precisions, make_calibrator, uncalibrated

from .helpers import batches


def test_calibrators_are_made_by_name_with_their_options():
    assert isinstance(make_calibrator("minmax", batches()), MinMaxCalibrator)
    cal = make_calibrator("percentile", batches(), None, percentile=99.5, progress=False)
    assert isinstance(cal, PercentileCalibrator) and "99.5" in cal.kind
    with pytest.raises(ConfigError, match=r"unknown calibrator 'kl'; choose one of \['entropy', 'minmax'"):
        make_calibrator("kl", batches())


def test_layer_precisions_parse_and_name_what_is_wrong():
    assert layer_precisions(["a=fp16", "b.c=int8"]) == {"a": "fp16", "b.c": "int8"}
    assert layer_precisions(["x=y=fp32"]) == {"x=y": "fp32"}  # the last '=' splits: names may hold one
    for spec, needle in (("a", "LAYER=PRECISION"), ("=fp16", "LAYER=PRECISION"), ("a=int4", "is not one of")):
        with pytest.raises(ConfigError, match=needle):
            layer_precisions([spec])


def test_asking_for_int8_without_data_is_a_warning_only_then():
    none = {"calibrator": None, "layer_precisions": {}}
    assert "int8 without --calibration" in uncalibrated(["fp32", "int8"], none)
    assert "fp8" in uncalibrated(["fp16"], {"calibrator": None, "layer_precisions": {"g": "fp8"}})
    assert uncalibrated(["fp16"], none) is None
    assert uncalibrated(["int8"], {"calibrator": make_calibrator("minmax", batches()), "layer_precisions": {}}) is None
