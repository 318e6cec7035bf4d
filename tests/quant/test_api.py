"""The public names of wb.quant resolve lazily to the functions and classes they name."""
from __future__ import annotations

import workbench as wb


def test_public_names():
    q = wb.quant
    for name in q.__all__:
        assert getattr(q, name) is not None
    assert callable(q.search) and callable(q.sensitivity) and callable(q.export_qdq)
    assert q.EntropyCalibrator.__module__ == "workbench.quant.calibrators"
    assert q.read_cache.__module__ == q.write_cache.__module__ == "workbench.quant.cache"
