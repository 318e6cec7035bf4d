"""NumPy kernels, one module per op family; each module is found by `cpu.registry.load_all()`."""
