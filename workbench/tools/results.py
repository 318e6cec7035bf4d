"""What every tool result shares: a dict form, JSON text and a pandas DataFrame."""
from __future__ import annotations

import json
import math

import numpy as np


def jsonable(value):
    """`value` with numpy scalars/arrays, tuples and non-finite floats made JSON-safe (NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class Result:
    """Base of the tool results: subclasses give to_dict() and to_dataframe()."""

    def to_dict(self) -> dict:
        raise NotImplementedError

    def to_json(self, indent: int | None = 2) -> str:
        """The result as JSON text (NaN and infinities become null)."""
        return json.dumps(jsonable(self.to_dict()), indent=indent)


def pandas():
    """pandas, imported on first use so `import workbench` stays fast."""
    import pandas as pd

    return pd
