"""The sliding-window layouts against brute force: every tap of FlatTaps, and separable reductions."""
import numpy as np
import pytest

from workbench.backends.cpu.windowing import flat_taps, separable_reduce, taps
from workbench.ir import windows


def _cases(n, seed=0):
    """Random windows (1-3 spatial dims, strides, dilations, pads, ceil_mode) with their output dims."""
    rng = np.random.default_rng(seed)
    found = []
    while len(found) < n:
        nd = int(rng.integers(1, 4))
        size = tuple(int(v) for v in rng.integers(1, 9, nd))
        win = windows.window(*(tuple(int(v) for v in rng.integers(lo, hi, k)) for lo, hi, k in
                               [(1, 4, nd), (1, 4, nd), (1, 3, nd), (0, 3, 2 * nd)]))
        try:
            out, _ = windows.resolve(size, win, "NOTSET", int(rng.integers(0, 2)))
        except Exception:  # kernel larger than the padded input: not a window
            continue
        if min(out) > 0:
            found.append((size, win, out))
    return found


def _padded_reference(x, win, out, fill):
    """x padded generously with fill, and the slices one tap reads: the obvious way."""
    nd = len(out)
    widths = [(0, 0)] * 2 + [(win.pads[i], win.pads[nd + i] + win.strides[i] * win.kernel[i] * win.dilations[i])
                             for i in range(nd)]
    xp = np.pad(x, widths, constant_values=fill)
    return xp, lambda tap: xp[(Ellipsis, *(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, s, o in
                                           zip(tap, win.dilations, win.strides, out)))]


@pytest.mark.parametrize("size, win, out", _cases(60))
def test_every_tap_run_is_the_window_slice(size, win, out):
    x = np.random.default_rng(1).standard_normal((2, 3, *size)).astype(np.float32)
    ft = flat_taps(x, win, out, fill=-7.0)
    _, read = _padded_reference(x, win, out, -7.0)
    for k, tap in enumerate(taps(win)):
        np.testing.assert_array_equal(ft.crop(ft.run(k)), read(tap))


@pytest.mark.parametrize("size, win, out", _cases(40, seed=2))
@pytest.mark.parametrize("ufunc, fill", [(np.maximum, -np.inf), (np.add, 0.0)])
def test_separable_reduce_is_the_reduction_over_all_taps(size, win, out, ufunc, fill):
    x = np.random.default_rng(3).standard_normal((2, 3, *size))
    _, read = _padded_reference(x, win, out, fill)
    want = ufunc.reduce([read(tap) for tap in taps(win)])
    np.testing.assert_allclose(separable_reduce(x, win, out, ufunc, fill), want, rtol=1e-12)
