"""BuilderConfig: what the user asks of a build (device, precision, workspace, shapes, tuning).

    >>> cfg = BuilderConfig(device="cpu", precision="fp16", max_batch=32)
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError

PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")
DEVICES = ("cpu", "cuda", "auto")
MAX_THREADS = 4096  # BLAS takes a C int; no host has more cores than this
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1000, "kib": 1 << 10, "m": 1 << 20, "mb": 1000**2, "mib": 1 << 20,
          "g": 1 << 30, "gb": 1000**3, "gib": 1 << 30, "t": 1 << 40, "tb": 1000**4, "tib": 1 << 40}


def parse_size(value, option: str = "workspace") -> int:
    """Bytes from an int or a size string.  >>> parse_size("1GiB")  # 1073741824"""
    if isinstance(value, bool):
        raise ConfigError(f"{option}: expected a byte count or a size like '512MiB', got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{option}: must be a finite, non-negative byte count, got {value}")
        return int(value)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _UNITS:
        raise ConfigError(f"{option}: cannot read size {value!r}; write e.g. 1073741824, '512MiB' or '2GiB'")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _shape3(name: str, triple) -> tuple:
    try:
        lo, opt, hi = (tuple(int(d) for d in s) for s in triple)
    except (TypeError, ValueError):
        raise ConfigError(f"profiles: input {name!r} needs (min, opt, max) shapes of ints, got {triple!r}") from None
    if not len(lo) == len(opt) == len(hi):
        raise ConfigError(f"profiles: input {name!r}: min/opt/max have different ranks: {lo}, {opt}, {hi}")
    if any(not (a <= b <= c) for a, b, c in zip(lo, opt, hi)) or any(a < 0 for a in lo):
        raise ConfigError(f"profiles: input {name!r}: need 0 <= min <= opt <= max per dim, got {lo}, {opt}, {hi}")
    return lo, opt, hi


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # True is an int to Python, not to a user


@dataclass
class BuilderConfig:
    """Options of one build. Precision is the lowest precision the builder may use.

    profiles: a list of {input_name: (min_shape, opt_shape, max_shape)}; max_batch is a shortcut
    that makes dim 0 of every input dynamic from 1 to max_batch (opt = max_batch).
    layer_precisions: {layer_name: precision} constraints.
    """

    device: str = "auto"
    precision: str = "fp32"
    workspace: Any = "1GiB"
    profiles: list = field(default_factory=list)
    max_batch: int | None = None
    timing_iterations: int = 8
    timing_cache: str | None = None
    layer_precisions: dict = field(default_factory=dict)
    builder_optimization_level: int = 3
    calibrator: Any = None
    cuda_graph: bool = True
    memory_limit: Any = None  # largest tensor allowed, bytes; None: a fraction of the host's memory
    cpu_threads: int | None = None  # BLAS threads per CPU execution context; None: the BLAS default

    def __post_init__(self):
        self.validate()

    def validate(self) -> "BuilderConfig":
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        self.workspace = parse_size(self.workspace)
        if self.memory_limit is not None:
            self.memory_limit = parse_size(self.memory_limit, "memory_limit")
        if not isinstance(self.layer_precisions, dict):
            raise ConfigError(f"layer_precisions must be a dict {{layer name: precision}}, got "
                              f"{type(self.layer_precisions).__name__}")
        for layer, p in self.layer_precisions.items():
            if p not in PRECISIONS:
                raise ConfigError(f"layer_precisions[{layer!r}] must be one of {PRECISIONS}, got {p!r}")
        if not _is_int(self.timing_iterations) or self.timing_iterations < 1:
            raise ConfigError(f"timing_iterations must be a positive int, got {self.timing_iterations!r}")
        if self.builder_optimization_level not in range(6):
            raise ConfigError(f"builder_optimization_level must be 0..5, got {self.builder_optimization_level!r}")
        if self.cpu_threads is not None and (isinstance(self.cpu_threads, bool) or not isinstance(
                self.cpu_threads, int) or not 1 <= self.cpu_threads <= MAX_THREADS):
            raise ConfigError(f"cpu_threads must be an int from 1 to {MAX_THREADS}, or None, got {self.cpu_threads!r}")
        if self.max_batch is not None and (not _is_int(self.max_batch) or self.max_batch < 1):
            raise ConfigError(f"max_batch must be a positive int, got {self.max_batch!r}")
        if not isinstance(self.profiles, (list, tuple)):
            self.profiles = [self.profiles]
        if not all(isinstance(p, dict) for p in self.profiles):
            raise ConfigError(f"profiles must be a list of {{input name: (min, opt, max)}} dicts, got "
                              f"{self.profiles!r}")
        self.profiles = [{name: _shape3(name, triple) for name, triple in p.items()} for p in self.profiles]
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["calibrator"] = type(self.calibrator).__name__ if self.calibrator is not None else None
        d["profiles"] = [{k: [list(s) for s in v] for k, v in p.items()} for p in self.profiles]
        return d

    def resolved_device(self) -> str:
        """'cuda' or 'cpu': 'auto' picks cuda when a usable GPU is present."""
        if self.device != "auto":
            return self.device
        from ..backends import cuda_available

        return "cuda" if cuda_available() else "cpu"
