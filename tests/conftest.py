"""Test-wide settings.

Hypothesis draws the same examples on every run (derandomize), so CI passes or fails on the code,
not on the day's luck; set WORKBENCH_FUZZ_RANDOM=1 to explore new examples locally, and use
scripts/fuzz_long.py for long randomized runs.
"""
import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("explore" if os.environ.get("WORKBENCH_FUZZ_RANDOM") else "ci")
