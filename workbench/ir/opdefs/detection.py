"""Shape rules of object-detection ops: NonMaxSuppression and RoiAlign."""
from __future__ import annotations

from .. import dims
from ...errors import ShapeError
from ..ops import Info, op

ROI_MODES = ("avg", "max")
ROI_COORDINATES = ("half_pixel", "output_half_pixel")


@op("NonMaxSuppression", since=10, center_point_box=0)
def non_max_suppression(boxes, scores, max_output_boxes_per_class=None, iou_threshold=None,
                        score_threshold=None, *, center_point_box):
    """selected_indices (num_selected, 3) int64 rows of [batch, class, box]; num_selected is known
    only at run time."""
    if center_point_box not in (0, 1):
        raise ShapeError(f"NonMaxSuppression: center_point_box must be 0 or 1, got {center_point_box!r}")
    box_size = boxes.shape[-1] if boxes.shape else None
    if boxes.shape is not None and (len(boxes.shape) != 3 or isinstance(box_size, int) and box_size != 4):
        raise ShapeError(f"NonMaxSuppression: boxes must be (batch, boxes, 4), got shape {boxes.shape}")
    return Info("int64", (dims.fresh("nms"), 3))


@op("RoiAlign", since=10, coordinate_transformation_mode="half_pixel", mode="avg", output_height=1,
    output_width=1, sampling_ratio=0, spatial_scale=1.0)
def roi_align(x, rois, batch_indices, *, coordinate_transformation_mode, mode, output_height, output_width,
              sampling_ratio, spatial_scale):
    """Y (num_rois, C, output_height, output_width)."""
    if mode not in ROI_MODES:
        raise ShapeError(f"RoiAlign: mode must be one of {ROI_MODES}, got {mode!r}")
    if coordinate_transformation_mode not in ROI_COORDINATES:
        raise ShapeError(f"RoiAlign: coordinate_transformation_mode must be one of {ROI_COORDINATES}, "
                         f"got {coordinate_transformation_mode!r}")
    if x.shape is not None and len(x.shape) != 4:
        raise ShapeError(f"RoiAlign: X must be (N, C, H, W), got shape {x.shape}")
    n_rois = rois.shape[0] if rois.shape is not None else (
        batch_indices.shape[0] if batch_indices.shape is not None else dims.fresh("rois"))
    channels = x.shape[1] if x.shape is not None else dims.fresh("channels")
    return Info(x.dtype, (n_rois, channels, output_height, output_width))
