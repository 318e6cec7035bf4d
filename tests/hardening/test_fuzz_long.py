"""The long-run script counts every case, and survives workers that crash or hang."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path, *args, env_extra=None):
    import os

    report = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "fuzz_long.py"), *args, "--report", str(report),
                           "--quiet"], capture_output=True, text=True, env=env, timeout=300)
    return done, json.loads(report.read_text())


def test_a_short_run_counts_every_case_by_kind(tmp_path):
    done, report = _run(tmp_path, "--cases", "70", "--workers", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(sum(counts.values()) == 10 for counts in report["table"].values())
    assert "total" in done.stdout and "refused" in done.stdout


def test_crashing_and_hanging_workers_are_replaced_and_reported(tmp_path):
    done, report = _run(tmp_path, "--cases", "8", "--workers", "2", "--timeout", "0.5",
                        "--kinds", "selftest-crash", "selftest-hang", env_extra={"WORKBENCH_FUZZ_SELFTEST": "1"})
    table = report["table"]
    assert sum(table["selftest-crash"].values()) == sum(table["selftest-hang"].values()) == 4
    assert table["selftest-crash"].get("crash", 0) >= 1 and table["selftest-hang"].get("hang", 0) >= 1
    assert done.returncode == 1 and {b["outcome"] for b in report["bugs"]} == {"crash", "hang"}
