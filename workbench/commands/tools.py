from workbench.tools.cli_commands import COMMANDS  # noqa: F401  (bench, compare, inspect, sweep)
