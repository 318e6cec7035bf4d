"""One exception family: every user-facing error is a WorkbenchError.

Each message says what is wrong, where (file, layer, tensor, option) and what to do.
"""


class WorkbenchError(Exception):
    """Base of every error workbench raises on bad input or an unusable setup."""


class ParseError(WorkbenchError):
    """The model file could not be turned into a Network (malformed, or an op we do not support)."""


class ValidationError(WorkbenchError):
    """A Network is inconsistent (dangling edge, cycle, duplicate name, bad attribute)."""


class ShapeError(WorkbenchError):
    """Shapes or dtypes do not fit an op, a profile or an input."""


class ConfigError(WorkbenchError):
    """A BuilderConfig option is out of range or contradicts another."""


class BuildError(WorkbenchError):
    """The builder could not produce an engine (no tactic fits, workspace too small...)."""


class PlanFormatError(WorkbenchError):
    """A plan file is truncated, corrupted, of another format version or for another backend."""


class ExecutionError(WorkbenchError):
    """Running an engine failed (wrong input names, shapes or dtypes, or a kernel fault)."""


class UnsupportedError(WorkbenchError):
    """An op, dtype or precision is not supported by the chosen backend."""


class ResourceLimitError(WorkbenchError):
    """A tensor or allocation would exceed the configured memory limit."""


class PluginError(WorkbenchError):
    """A plugin is missing, malformed, or was registered twice."""


class CancelledError(WorkbenchError):
    """Long work (build, calibration, benchmark) was cancelled by the user."""
