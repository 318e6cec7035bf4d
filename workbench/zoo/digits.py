"""The small trained CNN that ships with workbench, with its test and calibration data.

Everything here is plain files in `data/` read with NumPy: no torch, no
scikit-learn, no download. `train_digits.py` (dev only) regenerates them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).parent / "data"
MODEL_FILE = "digits_cnn.onnx"
META_FILE = "digits_cnn.json"
DATA_FILE = "digits_data.npz"


@dataclass(frozen=True)
class Digits:
    """The shipped digits model and its data.

    model: path of the ONNX file (input "input" float32 (batch, 1, 8, 8), pixels in [0, 1];
    output "logits" (batch, 10)); x_calib: calibration images (from the training split);
    x_test / y_test: held-out images and int64 labels; accuracy: fp32 top-1 accuracy
    on x_test measured when the model was trained; labels: class names.
    """

    model: Path
    x_calib: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    accuracy: float
    labels: tuple[str, ...]


def digits() -> Digits:
    """Load the shipped digits CNN and its data.

    Example: d = digits(); d.model, d.x_test.shape, d.accuracy
    """
    meta = json.loads((DATA_DIR / META_FILE).read_text())
    with np.load(DATA_DIR / DATA_FILE) as data:
        arrays = {k: data[k] for k in ("x_calib", "x_test", "y_test")}
    return Digits(model=DATA_DIR / MODEL_FILE, accuracy=float(meta["accuracy"]),
                  labels=tuple(meta["labels"]), **arrays)
