from workbench.ui.cli_commands import COMMANDS  # noqa: F401  (lab)
