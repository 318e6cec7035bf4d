"""NumPy kernels of NonMaxSuppression and RoiAlign, with onnxruntime's (and onnx.reference's) semantics."""
from __future__ import annotations

import numpy as np

from ..registry import kernel


# ---------------------------------------------------------------------------------- NonMaxSuppression
def corners(boxes: np.ndarray, center_point_box: int) -> tuple:
    """(y_min, x_min, y_max, x_max) of boxes given as [y1, x1, y2, x2] (either corner order) or, with
    center_point_box=1, as [x_center, y_center, width, height]."""
    if center_point_box:
        xc, yc, w, h = np.moveaxis(boxes, -1, 0)
        return yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2
    y1, x1, y2, x2 = np.moveaxis(boxes, -1, 0)
    return np.minimum(y1, y2), np.minimum(x1, x2), np.maximum(y1, y2), np.maximum(x1, x2)


def iou_with(box: int, y0, x0, y1, x1) -> np.ndarray:
    """Intersection over union of box `box` with every box (corner arrays); 0 where boxes do not
    overlap or either is empty."""
    inter_h = np.minimum(y1[box], y1) - np.maximum(y0[box], y0)
    inter_w = np.minimum(x1[box], x1) - np.maximum(x0[box], x0)
    inter = np.where((inter_h > 0) & (inter_w > 0), inter_h * inter_w, 0.0)
    area = (y1 - y0) * (x1 - x0)
    union = area[box] + area - inter
    ok = (inter > 0) & (area[box] > 0) & (area > 0) & (union > 0)
    return np.where(ok, inter / np.where(ok, union, 1.0), 0.0)


def select_boxes(boxes: np.ndarray, scores: np.ndarray, limit: int, iou_threshold: float, score_threshold,
                 center_point_box: int) -> list:
    """Greedy NMS of one class: indices of kept boxes, best score first (ties: lower index first).

    Memory stays linear in the number of boxes: one IoU row per kept box, not a full IoU matrix.
    """
    candidates = np.arange(scores.shape[0])
    if score_threshold is not None:
        candidates = candidates[scores > score_threshold]
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    box_corners = corners(boxes[order].astype(np.float64), center_point_box)
    alive = np.ones(order.shape[0], bool)
    kept = []
    while len(kept) < limit and alive.any():  # each choice suppresses the boxes it overlaps
        best = int(np.argmax(alive))  # the best-scoring box still alive
        kept.append(int(order[best]))
        alive &= ~(iou_with(best, *box_corners) > iou_threshold)
        alive[best] = False
    return kept


def _first(x, default):
    return default if x is None or np.asarray(x).size == 0 else np.asarray(x).reshape(-1)[0]


@kernel("NonMaxSuppression")
def non_max_suppression(boxes, scores, max_output_boxes_per_class=None, iou_threshold=None,
                        score_threshold=None, *, center_point_box=0):
    limit = max(int(_first(max_output_boxes_per_class, 0)), 0)
    iou_limit = float(_first(iou_threshold, 0.0))
    score_limit = _first(score_threshold, None)
    rows = []
    for b in range(scores.shape[0] if limit else 0):
        for c in range(scores.shape[1]):
            kept = select_boxes(boxes[b], scores[b, c], limit, iou_limit, score_limit, center_point_box)
            rows.extend((b, c, k) for k in kept)
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


# ---------------------------------------------------------------------------------- RoiAlign
def sample_axis(start, bin_size, bins: int, grid: int, size: int) -> tuple:
    """Bilinear sampling along one axis: (low index, high index, low weight, high weight, valid),
    each (bins, grid), for `grid` evenly spaced samples inside each of `bins` bins."""
    p = np.arange(bins)[:, None]
    i = np.arange(grid)[None, :]
    pos = start + p * bin_size + (i + 0.5) * bin_size / grid
    valid = (pos >= -1.0) & (pos <= size)
    pos = np.maximum(pos, 0)
    low = np.trunc(pos).astype(np.intp)
    at_end = low >= size - 1
    low = np.where(at_end, size - 1, low)
    high = np.where(at_end, size - 1, low + 1)
    pos = np.where(at_end, low, pos)
    frac = pos - low
    return low, high, 1 - frac, frac, valid


def align_one(image: np.ndarray, roi, out_h: int, out_w: int, sampling_ratio: int, half_pixel: bool,
              mode: str) -> np.ndarray:
    """RoiAlign of one region (x1, y1, x2, y2, already scaled) of one image (C, H, W) -> (C, out_h, out_w)."""
    offset = 0.5 if half_pixel else 0.0
    x0, y0, x1, y1 = (v - offset for v in roi)
    roi_w, roi_h = x1 - x0, y1 - y0
    if not half_pixel:  # malformed regions become 1x1
        roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
    bin_h, bin_w = roi_h / out_h, roi_w / out_w
    grid_h = sampling_ratio if sampling_ratio > 0 else int(np.ceil(roi_h / out_h))
    grid_w = sampling_ratio if sampling_ratio > 0 else int(np.ceil(roi_w / out_w))
    channels, height, width = image.shape
    if grid_h <= 0 or grid_w <= 0:
        return np.zeros((channels, out_h, out_w), image.dtype)
    ylo, yhi, wylo, wyhi, vy = sample_axis(y0, bin_h, out_h, grid_h, height)
    xlo, xhi, wxlo, wxhi, vx = sample_axis(x0, bin_w, out_w, grid_w, width)
    valid = (vy[:, :, None, None] & vx[None, None]).astype(image.dtype)  # (out_h, grid_h, out_w, grid_w)
    corners_ = [(ylo, xlo, wylo, wxlo), (ylo, xhi, wylo, wxhi), (yhi, xlo, wyhi, wxlo), (yhi, xhi, wyhi, wxhi)]
    terms = [(wy[:, :, None, None] * wx[None, None] * valid) * image[:, yi[:, :, None, None], xi[None, None]]
             for yi, xi, wy, wx in corners_]  # each (C, out_h, grid_h, out_w, grid_w)
    if mode == "max":  # onnxruntime's definition: the largest weighted corner of any sample
        return np.max(np.maximum.reduce(terms), axis=(2, 4))
    return np.sum(sum(terms), axis=(2, 4)) / max(grid_h * grid_w, 1)


@kernel("RoiAlign")
def roi_align(x, rois, batch_indices, *, coordinate_transformation_mode="half_pixel", mode="avg",
              output_height=1, output_width=1, sampling_ratio=0, spatial_scale=1.0):
    compute = np.float64 if x.dtype == np.float64 else np.float32  # onnx.reference works in float32
    image = x.astype(compute)
    scaled = rois.astype(compute) * compute(spatial_scale)
    half_pixel = coordinate_transformation_mode == "half_pixel"
    out = np.zeros((rois.shape[0], x.shape[1], output_height, output_width), compute)
    for r in range(rois.shape[0]):  # regions differ in size and sampling grid
        out[r] = align_one(image[int(batch_indices[r])], scaled[r], output_height, output_width,
                           int(sampling_ratio), half_pixel, mode)
    return out.astype(x.dtype)
