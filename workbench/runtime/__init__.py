"""Engine, ExecutionContext and the plan file format."""
