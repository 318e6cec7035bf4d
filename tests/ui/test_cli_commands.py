"""`workbench lab`: finds the notebook and builds the JupyterLab command (printed with --print)."""
from __future__ import annotations

import argparse
import sys

import pytest

from workbench.errors import WorkbenchError
from workbench.ui.cli_commands import COMMANDS, NOTEBOOKS, find_notebook, lab_command


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_arguments, run = COMMANDS["lab"]
    add_arguments(parser)
    return parser.parse_args(argv), run


def test_default_is_the_quickstart():
    assert find_notebook("01_quickstart") == NOTEBOOKS / "01_quickstart.ipynb"
    assert find_notebook("04_engine_explorer.ipynb").name == "04_engine_explorer.ipynb"


def test_unknown_notebook_lists_the_available_ones():
    with pytest.raises(WorkbenchError, match="01_quickstart"):
        find_notebook("06_nothing")


def test_command_opens_the_notebook_with_the_repo_as_root():
    command = lab_command(NOTEBOOKS / "01_quickstart.ipynb", port=8899, no_browser=True)
    assert command[:4] == [sys.executable, "-m", "jupyter", "lab"]
    assert f"--ServerApp.root_dir={NOTEBOOKS.parent}" in command
    assert str(NOTEBOOKS / "01_quickstart.ipynb") in command
    assert "--ServerApp.port=8899" in command and "--no-browser" in command


def test_print_shows_the_command_without_running_it(capsys):
    args, run = parse("03_transformer", "--print")
    assert run(args) == 0
    out = capsys.readouterr().out
    assert "jupyter lab" in out and "03_transformer.ipynb" in out
