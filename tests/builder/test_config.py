"""BuilderConfig: size strings, option checks with messages naming the option, profile resolution."""
from __future__ import annotations

import json

import numpy as np
import pytest

import workbench as wb
from workbench.builder.config import BuilderConfig, parse_size
from workbench.builder.profiles import resolve_profiles
from workbench.errors import ConfigError


@pytest.mark.parametrize("text, expected", [
    ("1GiB", 1 << 30), ("512MiB", 512 << 20), ("2gib", 2 << 30), ("1.5GB", 1_500_000_000), ("1k", 1024),
    ("64KB", 64_000), ("3 MiB", 3 << 20), ("1TiB", 1 << 40), ("123", 123), ("0", 0), (" 7b ", 7),
    (4096, 4096), (0, 0), (2.5e9, 2_500_000_000),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "GiB", "abc", "1XB", "1.2.3MiB", "-1GiB", "1 G i B", -1, True, None, [1],
                                 float("nan"), float("inf")])
def test_parse_size_refuses_with_the_option_name(bad):
    with pytest.raises(ConfigError, match="memory_limit"):
        parse_size(bad, "memory_limit")


def test_defaults_are_valid_and_json_ready():
    cfg = BuilderConfig()
    assert cfg.workspace == 1 << 30 and cfg.precision == "fp32" and cfg.device == "auto"
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d


def test_sizes_are_normalised_to_bytes():
    cfg = BuilderConfig(workspace="256MiB", memory_limit="2GiB")
    assert (cfg.workspace, cfg.memory_limit) == (256 << 20, 2 << 30)


@pytest.mark.parametrize("kwargs, option", [
    ({"device": "tpu"}, "device"),
    ({"precision": "fp64"}, "precision"),
    ({"precision": "FP16"}, "precision"),
    ({"workspace": "lots"}, "workspace"),
    ({"workspace": -5}, "workspace"),
    ({"memory_limit": "big"}, "memory_limit"),
    ({"timing_iterations": 0}, "timing_iterations"),
    ({"timing_iterations": "8"}, "timing_iterations"),
    ({"builder_optimization_level": 6}, "builder_optimization_level"),
    ({"builder_optimization_level": -1}, "builder_optimization_level"),
    ({"max_batch": 0}, "max_batch"),
    ({"max_batch": 2.5}, "max_batch"),
    ({"max_batch": True}, "max_batch"),
    ({"timing_iterations": True}, "timing_iterations"),
    ({"layer_precisions": None}, "layer_precisions"),
    ({"profiles": "x:1x4"}, "profiles"),
    ({"layer_precisions": {"conv1": "fp64"}}, "conv1"),
    ({"profiles": [{"x": ((1, 4), (8, 4))}]}, "'x'"),                     # two shapes, not three
    ({"profiles": [{"x": ((8, 4), (4, 4), (16, 4))}]}, "min <= opt <= max"),
    ({"profiles": [{"x": ((1, 4), (2, 4, 1), (4, 4))}]}, "different ranks"),
    ({"profiles": [{"x": ((1, "a"), (2, 4), (4, 4))}]}, "ints"),
    ({"profiles": [{"x": ((-1, 4), (2, 4), (4, 4))}]}, "0 <= min"),
])
def test_bad_options_name_the_option(kwargs, option):
    with pytest.raises(ConfigError, match=option.replace("(", r"\(")):
        BuilderConfig(**kwargs)


def test_a_single_profile_dict_is_accepted():
    cfg = BuilderConfig(profiles={"x": ([1, 4], [2, 4], [4, 4])})
    assert cfg.profiles == [{"x": ((1, 4), (2, 4), (4, 4))}]


# ---------------------------------------------------------------------------------- profiles against a network
def _net(shape=("batch", 4)):
    net = wb.Network("p")
    x = net.add_input("x", "float32", shape)
    net.mark_output(net.add_activation(x, "Relu").output)
    return net


def test_max_batch_makes_dim_zero_dynamic():
    (profile,) = resolve_profiles(_net(), BuilderConfig(max_batch=8))
    assert profile == {"x": ((1, 4), (8, 4), (8, 4))}


def test_static_inputs_need_no_profile():
    (profile,) = resolve_profiles(_net((2, 4)), BuilderConfig())
    assert profile == {"x": ((2, 4),) * 3}


@pytest.mark.parametrize("cfg, needle", [
    (BuilderConfig(), "profiles="),                                            # dynamic batch, no profile
    (BuilderConfig(profiles=[{"y": ((1, 4),) * 3}]), "not inputs"),            # unknown input name
    (BuilderConfig(profiles=[{"x": ((1, 5), (2, 5), (4, 5))}]), "fixed at 4"),  # contradicts a static dim
    (BuilderConfig(profiles=[{"x": ((1,), (2,), (4,))}]), "rank"),
])
def test_profile_problems_are_config_errors(cfg, needle):
    with pytest.raises(ConfigError, match=needle):
        resolve_profiles(_net(), cfg)


def test_max_batch_cannot_cover_other_dynamic_dims():
    with pytest.raises(ConfigError, match="dim 0 only"):
        resolve_profiles(_net(("batch", "seq")), BuilderConfig(max_batch=4))


def test_build_records_the_config():
    engine = wb.build(_net(), BuilderConfig(device="cpu", max_batch=2, workspace="64MiB"))
    assert engine.config["workspace"] == 64 << 20 and engine.config["max_batch"] == 2
    out = engine.create_execution_context().execute({"x": -np.ones((2, 4), np.float32)})
    assert not out[engine.outputs[0].name].any()
