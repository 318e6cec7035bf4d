"""`workbench lab`: open JupyterLab at the quickstart notebook (the workbench's main job).

COMMANDS maps the subcommand to (add_arguments(parser), run(args) -> exit code); workbench/cli.py
registers it. Top-level imports stay light: every `workbench` call imports this module.

    $ workbench lab                              # JupyterLab at notebooks/01_quickstart.ipynb
    $ workbench lab 04_engine_explorer --port 8899 --no-browser
    $ workbench lab --print                      # show the command instead of running it
"""
from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from ..errors import WorkbenchError

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"   # the repository's notebooks folder
DEFAULT_NOTEBOOK = "01_quickstart"


def add_arguments(parser) -> None:
    parser.add_argument("notebook", nargs="?", default=DEFAULT_NOTEBOOK,
                        help="notebook to open: a path, or a name in the notebooks folder (default: 01_quickstart)")
    parser.add_argument("--port", type=int, default=None, help="port of the Jupyter server (default: Jupyter's)")
    parser.add_argument("--no-browser", action="store_true", help="start the server without opening a browser")
    parser.add_argument("--print", dest="print_only", action="store_true",
                        help="print the JupyterLab command instead of running it")


def find_notebook(name: str, folder: Path = NOTEBOOKS) -> Path:
    """The notebook file for a path or a name in `folder` ('01_quickstart' or '01_quickstart.ipynb')."""
    candidates = [Path(name), folder / name, folder / f"{name}.ipynb"]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    available = sorted(p.stem for p in folder.glob("*.ipynb")) if folder.is_dir() else []
    raise WorkbenchError(f"no notebook {name!r}: looked in {folder}; available: {available or 'none'} "
                         f"(run from a workbench checkout, or give the notebook's path)")


def lab_command(notebook: Path, port: int | None = None, no_browser: bool = False) -> list:
    """The `jupyter lab` command line that opens `notebook` with its folder's parent as the root."""
    root = notebook.parent.parent if notebook.parent.name == "notebooks" else notebook.parent
    command = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={root}", str(notebook)]
    if port is not None:
        command.append(f"--ServerApp.port={port}")
    if no_browser:
        command.append("--no-browser")
    return command


def run(args) -> int:
    """Open JupyterLab at a workbench notebook (the quickstart by default)."""
    command = lab_command(find_notebook(args.notebook), args.port, args.no_browser)
    if args.print_only:
        print(shlex.join(command))
        return 0
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 130


COMMANDS = {"lab": (add_arguments, run)}
