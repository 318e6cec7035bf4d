"""Pure Network -> Network rewrites, one idea per module, run to a fixed point by `manager.run_passes`."""
