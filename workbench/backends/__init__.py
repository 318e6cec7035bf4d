"""Execution backends: `cpu` (NumPy, always present) and `cuda` (CuPy, imported only when asked)."""
