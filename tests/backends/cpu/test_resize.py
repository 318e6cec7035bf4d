import numpy as np
import pytest

from tests.oracle import check, ours, rand

COORDS = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric"]


def _f(*v):
    return np.array(v, np.float32)


def _i(*v):
    return np.array(v, np.int64)


@pytest.mark.parametrize("coord", COORDS)
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("scales", [(1, 1, 2.0, 1.5), (1, 1, 0.6, 0.8)])
def test_resize_scales(coord, mode, scales):
    check("Resize", [rand(1, 2, 5, 4), None, _f(*scales)], dict(mode=mode, coordinate_transformation_mode=coord),
          rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("nearest", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
@pytest.mark.parametrize("sizes", [(1, 2, 9, 7), (1, 2, 3, 2)])
def test_resize_sizes_nearest_modes(nearest, sizes):
    check("Resize", [rand(1, 2, 5, 4), None, None, _i(*sizes)], dict(mode="nearest", nearest_mode=nearest))


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("sizes", [(1, 1, 3, 2), (1, 1, 4, 9)])
def test_resize_antialias(mode, sizes):
    check("Resize", [rand(1, 1, 8, 6), None, None, _i(*sizes)], dict(mode=mode, antialias=1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("a, exclude", [(-0.5, 1), (-0.75, 0), (-0.6, 1)])
def test_resize_cubic_coefficients(a, exclude):
    check("Resize", [rand(1, 1, 5, 6), None, _f(1, 1, 1.7, 0.7)], dict(mode="cubic", cubic_coeff_a=a,
          exclude_outside=exclude), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_resize_tf_crop_and_resize_extrapolates(mode):
    roi = _f(0, 0, 0.2, -0.3, 1, 1, 1.2, 0.8)
    check("Resize", [rand(1, 2, 5, 4), roi, None, _i(1, 2, 6, 5)],
          dict(mode=mode, coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=7.0),
          rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
@pytest.mark.parametrize("axes", [[2, 3], [3, 2], [3]])
def test_resize_axes_and_aspect_ratio(policy, axes):
    sizes = _i(*[7, 3][:len(axes)])
    check("Resize", [rand(1, 2, 5, 4), None, None, sizes], dict(axes=axes, keep_aspect_ratio_policy=policy))


def test_resize_integer_and_half_inputs():
    x = (rand(1, 1, 4, 4, low=0, high=255)).astype(np.uint8)
    check("Resize", [x, None, _f(1, 1, 1.5, 1.5)], dict(mode="linear"))
    h = rand(1, 1, 4, 4).astype(np.float16)
    check("Resize", [h, None, _f(1, 1, 2, 2)], dict(mode="cubic"), rtol=2e-3, atol=2e-3)


def test_resize_opset10_and_upsample_forms():
    x = rand(1, 1, 3, 4)
    want = np.repeat(np.repeat(x, 2, axis=2), 3, axis=3)
    np.testing.assert_array_equal(ours("Resize", [x, _f(1, 1, 2, 3)])[0], want)
    np.testing.assert_array_equal(ours("Upsample", [x, _f(1, 1, 2, 3)])[0], want)
    np.testing.assert_array_equal(ours("Upsample", [x], dict(scales=[1.0, 1.0, 2.0, 3.0]))[0], want)
    lin = ours("Upsample", [x, _f(1, 1, 1, 2)], dict(mode="linear"))[0]
    np.testing.assert_allclose(lin[..., ::2], x, rtol=1e-6)  # asymmetric: even columns are the inputs


@pytest.mark.parametrize("coord", COORDS)
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("scales", [(2.0, 2.0), (0.5, 0.5), (3.0, 1.5)])
def test_phase_by_phase_path_equals_the_gather(monkeypatch, coord, mode, scales):
    """Axes whose weights repeat every few outputs are computed by strided slices: bit for bit the gather."""
    from workbench.backends.cpu.kernels import resize

    x, attrs = rand(2, 3, 8, 6), dict(mode=mode, coordinate_transformation_mode=coord)
    taken = []
    monkeypatch.setattr(resize, "_resize_periodic", lambda *a, f=resize._resize_periodic: taken.append(1) or f(*a))
    fast = ours("Resize", [x, None, _f(1, 1, *scales)], attrs)[0]
    monkeypatch.setattr(resize, "_periodic", lambda *a: None)
    np.testing.assert_array_equal(fast, ours("Resize", [x, None, _f(1, 1, *scales)], attrs)[0])
    if scales == (2.0, 2.0) and coord in ("half_pixel", "asymmetric"):
        assert taken  # the common upsampling really takes the fast path


def test_resize_to_an_empty_axis():
    x = rand(1, 1, 4, 4)
    assert ours("Resize", [x, None, None, _i(1, 1, 0, 3)], dict(mode="linear"))[0].shape == (1, 1, 0, 3)
