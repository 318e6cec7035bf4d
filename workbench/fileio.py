"""Writing files so that an interrupted save never leaves a half-written file behind."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import WorkbenchError


def atomic_write(path, data: bytes | str, what: str = "file") -> Path:
    """Write `data` to a temporary file beside `path`, sync it, then rename it over `path`.

    >>> atomic_write("model.plan", engine.serialize(), "plan")
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise WorkbenchError(f"cannot write {what} {path}: folder {folder} does not exist")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise WorkbenchError(f"cannot write {what} {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise WorkbenchError(f"cannot write {what} {path}: {e.strerror or e}") from None
        raise
    return path
