"""Op specs and shape rules, one module per op family; each module is found by `ops.load_all()`."""
