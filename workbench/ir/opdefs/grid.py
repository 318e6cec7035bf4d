"""Shape rules of sampling grids: AffineGrid (theta -> normalized grid) and GridSample (grid -> image).

A grid holds, per output location, normalized coordinates in [-1, 1], innermost spatial axis
first: (x, y) for images, (x, y, z) for volumes.
"""
from __future__ import annotations

from .. import dims
from ...errors import ShapeError
from ..ops import Info, op
from ..rules import symbolic_value

GRID_MODES = ("linear", "bilinear", "nearest", "cubic", "bicubic")  # opset 16 spells bilinear/bicubic
PADDING_MODES = ("zeros", "border", "reflection")


@op("AffineGrid", since=20, align_corners=0)
def affine_grid(theta, size, *, align_corners):
    """theta (N, 2, 3) or (N, 3, 4), size (N, C, H, W) or (N, C, D, H, W) -> grid (N, [D,] H, W, 2|3)."""
    if theta.shape is not None and len(theta.shape) != 3:
        raise ShapeError(f"AffineGrid: theta must be (N, 2, 3) or (N, 3, 4), got shape {theta.shape}")
    spatial = _spatial_dims(theta, size)
    n = theta.shape[0] if theta.shape is not None else dims.fresh("affine_grid")
    return Info(theta.dtype, None if spatial is None else (n, *spatial, len(spatial)))


def _spatial_dims(theta: Info, size: Info) -> tuple | None:
    """The output's spatial dims: from size's value, else fresh dims of the rank theta or size tells."""
    value = symbolic_value(size)
    if value is not None:
        if len(value) not in (4, 5):
            raise ShapeError(f"AffineGrid: size must have 4 or 5 elements, got {len(value)}")
        return tuple(value[2:])
    rank = None
    if size.shape is not None and isinstance(size.shape[0], int):
        rank = size.shape[0] - 2
    elif theta.shape is not None and isinstance(theta.shape[1], int):
        rank = theta.shape[1]
    return None if rank is None else tuple(dims.fresh("affine_grid") for _ in range(rank))


@op("GridSample", since=16, align_corners=0, mode="linear", padding_mode="zeros")
def grid_sample(x, grid, *, align_corners, mode, padding_mode):
    """X (N, C, *in_spatial), grid (N, *out_spatial, k) -> Y (N, C, *out_spatial)."""
    if mode not in GRID_MODES:
        raise ShapeError(f"GridSample: mode must be one of {GRID_MODES}, got {mode!r}")
    if padding_mode not in PADDING_MODES:
        raise ShapeError(f"GridSample: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    if x.shape is None or grid.shape is None:
        return Info(x.dtype, None)
    bad_last = isinstance(grid.shape[-1], int) and grid.shape[-1] != len(x.shape) - 2
    if len(grid.shape) != len(x.shape) or bad_last:
        raise ShapeError(f"GridSample: grid of shape {grid.shape} does not fit X of shape {x.shape}; "
                         f"it must be (N, *out_spatial, {len(x.shape) - 2})")
    return Info(x.dtype, (x.shape[0], x.shape[1], *grid.shape[1:-1]))
