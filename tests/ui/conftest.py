"""Sessions on the shipped digits model, with short benchmarks so a build takes about a second."""
from __future__ import annotations

import time

import pytest

import workbench as wb
from workbench.errors import CancelledError
from workbench.ui.session import Session

BENCH_SECONDS = 0.05


@pytest.fixture(scope="session")
def digits():
    return wb.zoo.digits()


def new_session(digits, **options) -> Session:
    """A session with calibration and labelled evaluation data (small slices: fast)."""
    return Session(digits.model, calibration_data=digits.x_calib[:64], eval_data=(digits.x_test[:128],
                   digits.y_test[:128]), bench_seconds=BENCH_SECONDS, **options)


@pytest.fixture
def fresh(digits):
    return new_session(digits)


@pytest.fixture(scope="module")
def built(digits):
    """A session with two builds: fp32 and fp16 at batch 8 (plus the baseline's row)."""
    session = new_session(digits)
    session.build(batch=8).result(timeout=120)
    session.build(precision="fp16").result(timeout=120)
    return session


def slow_build(net, config, progress=None, cancel=None):
    """Stands in for the builder: reports progress until cancelled (about 10 s if never)."""
    for i in range(1000):
        if cancel is not None and cancel():
            raise CancelledError("build cancelled during 'tactics'; nothing was kept")
        progress("tactics", i / 1000)
        time.sleep(0.01)
    raise AssertionError("the build was never cancelled")
