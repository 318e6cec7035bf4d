"""Helper for shape-rule tests: run one op's registered rule with its defaults filled in."""
from workbench.ir.ops import Info, attributes, spec_for


def infer(op: str, *inputs: Info, **attrs):
    """The op's shape rule applied to `inputs` (Info or None), attributes defaulted as the IR does."""
    spec = spec_for(op)
    assert spec is not None, f"no op spec for {op}"
    return spec.shape_rule(*inputs, **attributes(spec, attrs, op))
