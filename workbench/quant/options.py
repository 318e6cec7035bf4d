"""The command line's quantization options, shared by every command that builds (build, bench, compare, sweep).

    $ workbench build model.onnx --precision int8 --calibration calib/ --calibration-cache model.calib
    $ workbench bench model.onnx --precision int8 --calibration calib/ --layer-precision Gemm_0=fp16

    >>> add_arguments(parser)             # the options, as one argument group
    >>> BuilderConfig(..., **from_args(args))   # {"calibrator": ..., "layer_precisions": {...}}
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError

# the calibrators by the names the command line and the notebook give them
CALIBRATORS = {"entropy": "EntropyCalibrator", "minmax": "MinMaxCalibrator", "percentile": "PercentileCalibrator"}


def make_calibrator(kind: str, data, cache=None, **options):
    """A calibrator by name (CALIBRATORS) over `data`, with the calibrator's keyword `options`."""
    if kind not in CALIBRATORS:
        raise ConfigError(f"unknown calibrator {kind!r}; choose one of {sorted(CALIBRATORS)}")
    from . import calibrators

    return getattr(calibrators, CALIBRATORS[kind])(data, cache, **options)


def add_arguments(parser) -> None:
    q = parser.add_argument_group("quantization (int8 / fp8)")
    q.add_argument("--calibration", metavar="FOLDER",
                   help="calibration data: .npz files (one batch each, keys = input names) or .npy files (one batch "
                        "of the single input each)")
    q.add_argument("--calibrator", default="entropy", choices=tuple(CALIBRATORS),
                   help="how ranges become scales (default entropy: KL divergence, as TensorRT)")
    q.add_argument("--percentile", type=float, help="the percentile calibrator's percentile (default 99.99)")
    q.add_argument("--calibration-cache", metavar="FILE",
                   help="scales reused from FILE when it matches the network and calibrator, else written there")
    q.add_argument("--layer-precision", nargs="+", action="extend", default=[], metavar="LAYER=PRECISION",
                   help="pin layers to a precision, e.g. Gemm_0=fp16 (names as `workbench inspect` lists them)")


def from_args(args) -> dict:
    """BuilderConfig options from the parsed arguments: the calibrator (None without data or cache) and
    layer_precisions."""
    return {"calibrator": calibrator(args), "layer_precisions": layer_precisions(args.layer_precision)}


def uncalibrated(precisions, options: dict) -> str | None:
    """The warning for int8/fp8 asked for without calibration data, or None."""
    from .quantize import PRECISIONS

    asked = [p for p in precisions if p in PRECISIONS] + [p for p in options["layer_precisions"].values()
                                                          if p in PRECISIONS]
    if not asked or options["calibrator"] is not None:
        return None
    return (f"warning: {asked[0]} without --calibration: layers without Q/DQ in the model stay in floating point; "
            f"give --calibration FOLDER (or --calibration-cache FILE)")


def calibrator(args):
    """The calibrator the options ask for, or None (no data and no cache given)."""
    if args.percentile is not None and args.calibrator != "percentile":
        raise ConfigError(f"--percentile is the percentile calibrator's: add --calibrator percentile "
                          f"(not {args.calibrator})")
    if args.calibration is None and args.calibration_cache is None:
        return None
    if args.calibration is None and not Path(args.calibration_cache).is_file():
        raise ConfigError(f"--calibration-cache {args.calibration_cache} does not exist yet: give --calibration "
                          f"FOLDER to calibrate and write it")
    extra = {"percentile": args.percentile} if args.percentile is not None else {}
    return make_calibrator(args.calibrator, args.calibration, args.calibration_cache,
                           progress=not getattr(args, "quiet", False), **extra)


def layer_precisions(specs: list) -> dict:
    """{layer: precision} from ["LAYER=PRECISION", ...].

    >>> layer_precisions(["Gemm_0=fp16"])  # {'Gemm_0': 'fp16'}
    """
    from ..builder.config import PRECISIONS

    out = {}
    for spec in specs:
        name, sep, precision = spec.rpartition("=")
        if not sep or not name:
            raise ConfigError(f"--layer-precision {spec!r}: write LAYER=PRECISION, e.g. Gemm_0=fp16")
        if precision not in PRECISIONS:
            raise ConfigError(f"--layer-precision {spec!r}: precision {precision!r} is not one of "
                              f"{', '.join(PRECISIONS)}")
        if name in out:
            raise ConfigError(f"--layer-precision names layer {name!r} twice")
        out[name] = precision
    return out
