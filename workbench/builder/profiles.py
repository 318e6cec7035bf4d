"""Optimization profiles: the (min, opt, max) shapes each input may take, and the check at execute time."""
from __future__ import annotations

from ..errors import ConfigError, ExecutionError


def resolve_profiles(net, cfg) -> list:
    """Profiles as [{input: (min, opt, max)}], one entry per graph input, from the config and the network."""
    if cfg.profiles:
        return [_complete(net, p) for p in cfg.profiles]
    profile = {}
    for name in net.inputs:
        shape = net.tensors[name].shape
        if shape is None:
            raise ConfigError(f"input {name!r} has an unknown rank; give profiles=[{{{name!r}: (min, opt, max)}}]")
        if cfg.max_batch is not None and shape:
            rest = shape[1:]
            _require_static(name, rest, "max_batch covers dim 0 only")
            profile[name] = ((1, *rest), (cfg.max_batch, *rest), (cfg.max_batch, *rest))
        else:
            _require_static(name, shape, "")
            profile[name] = (tuple(shape),) * 3
    return [profile]


def _require_static(name: str, dims, why: str) -> None:
    dynamic = [d for d in dims if not isinstance(d, int)]
    if dynamic:
        raise ConfigError(f"input {name!r} has dynamic dims {dynamic}{'; ' + why if why else ''}: give "
                          f"profiles=[{{{name!r}: (min_shape, opt_shape, max_shape)}}] in the BuilderConfig "
                          f"(or max_batch=N when only the batch dim is dynamic)")


def _complete(net, profile: dict) -> dict:
    unknown = set(profile) - set(net.inputs)
    if unknown:
        raise ConfigError(f"profiles name {sorted(unknown)}, which are not inputs of the network; "
                          f"use the input names {net.inputs}")
    out = {}
    for name in net.inputs:
        shape = net.tensors[name].shape
        if name in profile:
            lo, opt, hi = profile[name]
            if shape is not None:
                _check_against_declared(name, shape, lo, hi)
            out[name] = (lo, opt, hi)
        else:
            _require_static(name, shape if shape is not None else ("?",), "it is not in the profile")
            out[name] = (tuple(shape),) * 3
    return out


def _check_against_declared(name, shape, lo, hi) -> None:
    if len(shape) != len(lo):
        raise ConfigError(f"profile for input {name!r} has rank {len(lo)}, the model declares {shape}")
    for i, (d, a, b) in enumerate(zip(shape, lo, hi)):
        if isinstance(d, int) and not (a == d == b):
            raise ConfigError(f"profile for input {name!r}: dim {i} is fixed at {d} by the model, "
                              f"but the profile gives {a}..{b}")


def pick_profile(profiles: list, shapes: dict) -> int:
    """Index of the first profile that admits every input shape; ExecutionError saying why not."""
    reasons = []
    for i, profile in enumerate(profiles):
        why = _mismatch(profile, shapes)
        if why is None:
            return i
        reasons.append(f"profile {i}: {why}")
    raise ExecutionError("input shapes fit no optimization profile of this engine: " + "; ".join(reasons) +
                         ". Rebuild with a profile that covers them.")


def _mismatch(profile: dict, shapes: dict):
    for name, (lo, _, hi) in profile.items():
        shape = tuple(shapes[name])
        if len(shape) != len(lo):
            return f"input {name!r} has shape {shape}, expected rank {len(lo)} (min {lo}, max {hi})"
        if any(not (a <= d <= b) for d, a, b in zip(shape, lo, hi)):
            return f"input {name!r} has shape {shape}, outside min {lo} .. max {hi}"
    return None
