"""Measurement tools: the numbers a notebook plots, each returned as a result object.

- bench.py    trtexec-like benchmark: throughput, latency percentiles, memory, energy
- compare.py  Polygraphy-like accuracy check against a baseline, optionally layer by layer
- inspect.py  TREx-like per-layer analysis of an engine (works on a loaded plan, no GPU needed)
- sweep.py    build, bench and compare a grid of configurations on any concurrent.futures executor
- runners.py  the runner interface shared by engines and the framework baselines (workbench.baselines)

Every result has .to_dataframe() (pandas) and .to_json().

    >>> import workbench as wb
    >>> wb.bench(engine, batch=8).to_dataframe()
"""
