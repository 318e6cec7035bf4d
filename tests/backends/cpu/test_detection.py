"""NonMaxSuppression, RoiAlign and MaxUnpool kernels vs onnx.reference."""
import numpy as np
import pytest

from tests.oracle import check, ours, rand


def random_boxes(batch, n, center, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0, 10, (batch, n, 2)), rng.uniform(0.5, 4, (batch, n, 2))
    if center:
        return np.concatenate([a, b], axis=-1).astype(np.float32)
    corners = np.concatenate([a, a + b], axis=-1)
    flip = rng.random((batch, n)) < 0.3  # some boxes give their corners in the other order
    corners[flip] = corners[flip][:, [2, 3, 0, 1]]
    return corners.astype(np.float32)


@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize("limit,iou,score", [(3, 0.3, None), (10, 0.5, 0.4), (2, 0.0, 0.1), (0, 0.5, None)])
@pytest.mark.parametrize("seed", [0, 1])
def test_non_max_suppression(center, limit, iou, score, seed):
    boxes = random_boxes(2, 12, center, seed)
    scores = rand(2, 3, 12, low=0, high=1, seed=seed)
    scores[0, 0, 3] = scores[0, 0, 5]  # a tie: the lower index goes first
    ins = [boxes, scores, np.array([limit], np.int64), np.array([iou], np.float32),
           None if score is None else np.array([score], np.float32)]
    check("NonMaxSuppression", ins, {"center_point_box": center})


def test_non_max_suppression_without_a_limit_selects_nothing():
    (got,) = ours("NonMaxSuppression", [random_boxes(1, 4, 0, 0), rand(1, 1, 4, low=0, high=1)])
    assert got.shape == (0, 3) and got.dtype == np.int64


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("coords", ["half_pixel", "output_half_pixel"])
@pytest.mark.parametrize("sampling_ratio,scale", [(2, 1.0), (0, 0.5), (1, 0.25)])
def test_roi_align(mode, coords, sampling_ratio, scale):
    x = rand(2, 3, 10, 12)
    rois = np.array([[0, 0, 9, 9], [1, 5, 4, 9], [5, 5, 11, 9], [-2, -1, 30, 20], [3, 3, 3.2, 3.1]],
                    np.float32) / scale
    attrs = {"mode": mode, "coordinate_transformation_mode": coords, "output_height": 3, "output_width": 4,
             "sampling_ratio": sampling_ratio, "spatial_scale": scale}
    check("RoiAlign", [x, rois, np.array([0, 1, 1, 0, 1], np.int64)], attrs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("spatial,attrs", [((6, 4), {"kernel_shape": [2, 2], "strides": [2, 2]}),
                                           ((7,), {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
                                           ((4, 2, 6), {"kernel_shape": [2, 2, 2], "strides": [2, 2, 2]})])
@pytest.mark.parametrize("with_shape", [False, True])
def test_max_unpool_inverts_max_pool(spatial, attrs, with_shape):
    from tests.oracle import reference

    x = rand(2, 3, *spatial)
    pooled, indices = reference("MaxPool", [x], attrs, n_out=2)
    ins = [pooled, indices]
    if with_shape:
        ins.append(np.array(x.shape[:2] + tuple(d + 1 for d in spatial), np.int64))
    check("MaxUnpool", ins, attrs)
