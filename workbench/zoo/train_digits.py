"""Train the shipped digits CNN and write workbench/zoo/data/ (DEV ONLY).

Needs torch and scikit-learn, which workbench itself never imports: run it only
to regenerate the shipped files, then commit them:

    python -m workbench.zoo.train_digits            # writes workbench/zoo/data/

It reads scikit-learn's bundled 8x8 digits (no download), holds out a
stratified test split, trains a small Conv/BN/ReLU CNN on the rest, writes it
as ONNX through the zoo's graph writer (BatchNormalization kept as its own
node), and records the fp32 test accuracy measured with onnxruntime on the
written file, so `digits().accuracy` is exactly what a correct engine reaches.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from workbench.zoo._graph import GraphWriter
from workbench.zoo.digits import DATA_DIR, DATA_FILE, META_FILE, MODEL_FILE

SEED = 0
TEST_SIZE = 450
CALIB_SIZE = 256


def load_splits(seed: int = SEED) -> dict[str, np.ndarray]:
    """Pixels scaled to [0, 1] as float32 (N, 1, 8, 8); train/test stratified, calib drawn from train."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]
    y = data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, stratify=y, random_state=seed)
    calib = np.random.default_rng(seed).choice(len(x_train), CALIB_SIZE, replace=False)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "x_calib": x_train[np.sort(calib)]}


def make_net():
    """Conv(1->16)-BN-ReLU, Conv(16->32)-BN-ReLU, MaxPool 2, Conv(32->64)-ReLU, GAP, Linear(64->10)."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )


def train(net, x: np.ndarray, y: np.ndarray, epochs: int = 40, seed: int = SEED):
    """Adam with light shift augmentation; returns the net in eval mode."""
    import torch

    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xt)).split(64):
            # Random one-pixel shifts: cheap augmentation that helps on 8x8 images.
            dx, dy = torch.randint(-1, 2, (2,)).tolist()
            xb = torch.roll(xt[idx], shifts=(dy, dx), dims=(2, 3))
            loss = torch.nn.functional.cross_entropy(net(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return net.eval()


def write_onnx(net, path: Path, opset: int = 17) -> Path:
    """Write the trained Sequential as ONNX, one node per torch layer, BN left unfolded."""
    conv1, bn1, _, conv2, bn2, _, _, conv3, _, _, _, fc = net
    g = GraphWriter("digits_cnn", opset)

    def arr(t):
        return t.detach().numpy()

    def bn(x, m):
        params = {"scale": arr(m.weight), "bias": arr(m.bias),
                  "mean": arr(m.running_mean), "var": arr(m.running_var)}
        return g.batchnorm(x, m.num_features, params=params, eps=m.eps)

    x = g.node("Relu", [bn(g.conv("input", 1, 16, 3, weight=arr(conv1.weight)), bn1)])
    x = g.node("Relu", [bn(g.conv(x, 16, 32, 3, weight=arr(conv2.weight)), bn2)])
    x = g.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = g.node("Relu", [g.conv(x, 32, 64, 3, weight=arr(conv3.weight), bias=arr(conv3.bias))])
    x = g.node("Flatten", [g.node("GlobalAveragePool", [x])], axis=1)
    g.rename(g.gemm(x, 64, 10, weight=arr(fc.weight), bias=arr(fc.bias)), "logits")
    return g.save(path, [("input", "float32", ["batch", 1, 8, 8])], [("logits", "float32", ["batch", 10])])


def onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of the ONNX file under onnxruntime (CPU, fp32)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = sess.run(["logits"], {"input": x})[0]
    return float((logits.argmax(1) == y).mean())


def main(out_dir: Path = DATA_DIR) -> dict:
    """Train, write model + data + metadata into `out_dir`, return the metadata."""
    import torch

    torch.set_num_threads(2)
    splits = load_splits()
    net = train(make_net(), splits["x_train"], splits["y_train"])
    out_dir.mkdir(parents=True, exist_ok=True)
    model = write_onnx(net, out_dir / MODEL_FILE)
    with torch.no_grad():
        torch_acc = float((net(torch.from_numpy(splits["x_test"])).argmax(1).numpy() == splits["y_test"]).mean())
    meta = {
        "accuracy": onnx_accuracy(model, splits["x_test"], splits["y_test"]),
        "torch_accuracy": torch_acc,
        "labels": [str(d) for d in range(10)],
        "input": "float32 (batch, 1, 8, 8), pixel / 16 in [0, 1]",
        "n_test": len(splits["y_test"]), "n_calib": len(splits["x_calib"]),
        "source": "sklearn.datasets.load_digits, stratified split, seed 0",
        "torch": torch.__version__,
    }
    np.savez_compressed(out_dir / DATA_FILE, x_calib=splits["x_calib"], x_test=splits["x_test"],
                        y_test=splits["y_test"])
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output folder (default: the package's data/)")
    print(json.dumps(main(parser.parse_args().out), indent=2))
