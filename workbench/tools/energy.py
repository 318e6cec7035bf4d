"""Energy meters for the benchmark: NVML on NVIDIA GPUs, RAPL on Linux CPUs that expose it.

A meter is started before the timed loop and stopped after it; stop() gives joules, seconds,
average watts and where the number came from. meter_for() returns None when nothing can measure,
and the benchmark then reports energy as not measured.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

RAPL = Path("/sys/class/powercap/intel-rapl:0")
SAMPLE_S = 0.02  # NVML power sampling period when the board has no energy counter


class _Meter:
    source = ""

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._e0 = self._read()

    def stop(self) -> dict:
        joules = self._joules(self._e0, self._read())
        seconds = time.perf_counter() - self._t0
        return {"joules": joules, "seconds": seconds, "avg_watts": joules / seconds if seconds > 0 else None,
                "source": self.source}


class NvmlEnergy(_Meter):
    """The GPU board's energy counter (Volta and newer), else power samples integrated over time."""

    source = "nvml"

    def __init__(self, pynvml, index: int = 0):
        self.nvml = pynvml
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        try:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
            self.counter = True
        except pynvml.NVMLError:
            self.counter = False
            self.source = "nvml power samples"

    def start(self) -> None:
        if not self.counter:
            self._samples, self._stop = [], threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        super().start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._samples.append(self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0)  # mW -> W
            time.sleep(SAMPLE_S)

    def stop(self) -> dict:
        if not self.counter:
            self._stop.set()
            self._thread.join()
        return super().stop()

    def _read(self):
        return self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) if self.counter else None

    def _joules(self, e0, e1) -> float:
        if self.counter:
            return (e1 - e0) / 1000.0  # mJ
        watts = sum(self._samples) / max(len(self._samples), 1)
        return watts * (time.perf_counter() - self._t0)


class RaplEnergy(_Meter):
    """The CPU package's energy counter: the whole package, so other processes' work counts too."""

    source = "rapl package"

    def __init__(self, folder: Path = RAPL):
        self.folder = folder
        self.wrap = int((folder / "max_energy_range_uj").read_text())
        self._read()

    def _read(self) -> int:
        return int((self.folder / "energy_uj").read_text())

    def _joules(self, e0, e1) -> float:
        return ((e1 - e0) % self.wrap) / 1e6


def meter_for(device: str, index: int = 0):
    """A started-on-demand energy meter for 'cuda' (NVML) or 'cpu' (RAPL), or None when unavailable."""
    try:
        if device == "cuda":
            import pynvml

            pynvml.nvmlInit()
            return NvmlEnergy(pynvml, index)
        return RaplEnergy(RAPL)
    except Exception:  # noqa: BLE001 - no library, no driver, no permission: all mean "not measured"
        return None
