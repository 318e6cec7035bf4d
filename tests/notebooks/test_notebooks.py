"""The notebooks run top to bottom on the CPU within a time bound, and stay thin (logic lives in workbench)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SECONDS = {"03_transformer": 300}   # the time bound of a notebook's whole run; the others get DEFAULT_SECONDS
DEFAULT_SECONDS = 180
MAX_CELL_LINES = 8
# Files a notebook must leave in its working folder.
WRITES = {"01_quickstart": ["digits_int8.plan", "digits_int8.build.json"], "02_int8_calibration": ["digits.calib"],
          "03_transformer": ["bert_small.onnx"], "04_engine_explorer": ["digits_fp32.plan", "digits_fp16.plan"]}


def test_there_are_five_notebooks():
    assert [p.stem for p in NOTEBOOKS] == ["01_quickstart", "02_int8_calibration", "03_transformer",
                                           "04_engine_explorer", "05_sweep_pareto"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_thin_and_clean(path):
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert code and book.cells[0].cell_type == "markdown"
    for cell in code:
        lines = cell.source.splitlines()
        assert len(lines) <= MAX_CELL_LINES, f"{path.name}: a cell of {len(lines)} lines; move logic into workbench"
        assert not any(line.lstrip().startswith(("def ", "class ")) for line in lines), f"{path.name} defines code"
        assert not cell.outputs and cell.execution_count is None, f"{path.name} is committed with outputs"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    # The kernel imports this checkout's workbench and writes its files into tmp_path.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    book = nbformat.read(path, as_version=4)
    limit = SECONDS.get(path.stem, DEFAULT_SECONDS)
    client = NotebookClient(book, timeout=limit, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    print(f"\n{path.name}: executed in {elapsed:.1f} s (bound {limit} s)")
    assert elapsed < limit
    for cell in book.cells:
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error", f"{path.name}: {output.get('ename')}: {output.get('evalue')}"
    for name in WRITES.get(path.stem, []):
        assert (tmp_path / name).is_file(), f"{path.name} did not write {name}"
