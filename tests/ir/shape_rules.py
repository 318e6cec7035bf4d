"""Helper for shape-rule tests: run one op's registered rule with its defaults filled in."""
import numpy as np

from workbench.ir.ops import Info, attributes, spec_for


def infer(op: str, *inputs: Info, **attrs):
    """The op's shape rule applied to `inputs` (Info or None), attributes defaulted as the IR does."""
    spec = spec_for(op)
    assert spec is not None, f"no op spec for {op}"
    return spec.shape_rule(*inputs, **attributes(spec, attrs, op))


rule = infer  # the name the shape-family tests use


def i64(*values) -> Info:
    """A constant int64 input, its value known to the rule."""
    array = np.array(values, np.int64)
    return Info("int64", array.shape, array)
