"""BuilderConfig, the build driver, tactic selection and the memory planner."""
