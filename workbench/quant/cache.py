"""The calibration cache: a small text file of per-tensor int8 scales, reused to skip calibration.

    workbench-calibration version=0.1.0 kind=EntropyCalibrator network=5d41402abc4b2a76
    input: 0.0078740157
    conv1_relu_out: 0.041337

The scale of a tensor is amax / 127 (float32), whatever precision the build then uses. The
header names the calibrator that made the file and a hash of the network's calibrated tensor
names; `read_cache` refuses a file made by another calibrator or for another network, saying which.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import ConfigError, WorkbenchError
from ..fileio import atomic_write

MAGIC = "workbench-calibration"
_HEADER = re.compile(rf"^{MAGIC} version=(\S+) kind=(\S+) network=([0-9a-f]+)$")


def calibrated_tensors(net) -> list:
    """The tensors a calibrator measures: float32 graph inputs and float32 layer outputs."""
    names = [n for n in net.inputs if net.tensors[n].dtype == "float32"]
    for layer in net.layers:
        names.extend(o for o in layer.outputs if o and net.tensors[o].dtype == "float32")
    return names


def network_key(net_or_names) -> str:
    """16 hex digits identifying a network by the names of its calibrated tensors."""
    names = net_or_names if isinstance(net_or_names, (list, tuple, set)) else calibrated_tensors(net_or_names)
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16]


def write_cache(path, scales: dict, network, kind: str) -> None:
    """Write `scales` {tensor: scale} for `network` (a Network or its key) atomically.

    >>> write_cache("model.calib", cal.scales, net, "EntropyCalibrator")
    """
    key = network if isinstance(network, str) else network_key(network)
    lines = [f"{MAGIC} version={__version__} kind={kind} network={key}"]
    for name, scale in scales.items():
        if "\n" in name or "\r" in name:
            raise ConfigError(f"tensor name {name!r} cannot be written to a calibration cache (line break)")
        lines.append(f"{name}: {float(np.float32(scale))!r}")
    try:
        atomic_write(path, "\n".join(lines) + "\n", "calibration cache")
    except WorkbenchError as e:
        raise ConfigError(str(e)) from None


def read_header(path) -> dict:
    """{'version', 'kind', 'network'} of a cache file; ConfigError if it is not one."""
    path = Path(path)
    try:
        first = path.open(encoding="utf-8").readline().rstrip("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"calibration cache {path} cannot be read: {e}") from None
    m = _HEADER.match(first)
    if not m:
        raise ConfigError(f"{path} is not a workbench calibration cache (its first line is {first[:80]!r}); "
                          f"delete it or give another cache path")
    return dict(zip(("version", "kind", "network"), m.groups()))


def read_cache(path, network=None, kind: str | None = None) -> dict:
    """{tensor: float32 scale} from a cache file, refusing one made for another network or calibrator.

    `network`: a Network (or its key) the cache must match; `kind`: the calibrator it must come from.
    >>> scales = read_cache("model.calib", net, "EntropyCalibrator")
    """
    path = Path(path)
    header = read_header(path)
    scales = _read_lines(path)
    if kind is not None and header["kind"] != kind:
        raise ConfigError(f"calibration cache {path} was made by {header['kind']}, not {kind}: delete it, "
                          f"give another cache path, or use the calibrator that made it")
    if network is not None:
        _check_network(path, header["network"], scales, network)
    return scales


def _read_lines(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"calibration cache {path} cannot be read ({e}); delete it to recalibrate") from None
    scales = {}
    # split on "\n" only, as written: splitlines() would also split names holding \x1c..\x1e or \x85
    for number, line in enumerate(text.split("\n")[1:], start=2):
        if not line.strip():
            continue
        name, sep, value = line.rpartition(": ")
        try:
            scale = np.float32(value)
        except ValueError:
            scale = None
        if not sep or not name or scale is None or not np.isfinite(scale) or scale <= 0:
            raise ConfigError(f"calibration cache {path}, line {number}: expected 'tensor: positive scale', "
                              f"got {line[:80]!r}; delete the file to recalibrate")
        scales[name] = float(scale)
    return scales


def _check_network(path: Path, key: str, scales: dict, network) -> None:
    want = network if isinstance(network, str) else network_key(network)
    if key == want:
        return
    detail = ""
    if not isinstance(network, str):
        ours = set(calibrated_tensors(network))
        foreign, lacking = sorted(set(scales) - ours), sorted(ours - set(scales))
        detail = (f" ({len(foreign)} of its tensors are not in this network, e.g. {foreign[:3]}; "
                  f"{len(lacking)} of this network's are not in it, e.g. {lacking[:3]})")
    raise ConfigError(f"calibration cache {path} was made for another network (key {key}, this network's is "
                      f"{want}){detail}: delete it or give another cache path to recalibrate")
