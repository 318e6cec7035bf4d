"""Untrusted models, plans and array files never execute code: no pickle, no eval, no import by name.

A static audit of workbench's source keeps it that way; forged plans show that names in a plan
(backend, ops, domains, plugins, dtypes) are looked up in workbench's own tables and never imported.
"""
from __future__ import annotations

import ast
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workbench as wb
from workbench.ir import dims
from workbench.runtime import plan as plan_format

from .fuzzers import random_dim_expression, time_limit
from .graphs import one_node_model

PACKAGE = Path(wb.__file__).parent

# Every importlib.import_module call in workbench, with why its argument cannot come from a file.
# A new call fails test_imports_by_name_are_only_of_workbench_own_modules until it is reviewed here.
IMPORT_SITES = {
    ("__init__.py", "__getattr__"): "names from the fixed _LAZY table and _SUBMODULES set",
    ("cli.py", "commands"): "workbench.commands.* modules found on disk in the package",
    ("discover.py", "import_modules"): "modules found on disk in a package its callers name in code",
    ("quant/__init__.py", "__getattr__"): "names from the fixed _LAZY table",
    ("ui/__init__.py", "__getattr__"): "names from the fixed _LAZY table and _MODULES set",
    ("backends/cuda/device.py", "library"): "the constants 'cudnn' and 'nvmath'",
    ("backends/__init__.py", "cuda_available"): "the constant 'cupy'",
    ("backends/__init__.py", "get_backend"): "name checked against ('cpu', 'cuda') just before",
    ("tools/device.py", "_module"): "lib is 'cupy' or 'torch', chosen by the caller's code",
    ("baselines.py", "_import"): "constant module names of the baseline frameworks",
}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
# np.load of files shipped inside the package (not user input) may use numpy's (safe) default.
SHIPPED_DATA_LOADS = {"zoo/digits.py"}


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(), str(path))


def _calls(tree):
    """(enclosing function name, Call node) for every call in a module."""
    def walk(node, function):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Call):
                yield function, child
            yield from walk(child, inner)
    yield from walk(tree, "<module>")


def _name(func) -> str:
    """'np.load' for np.load(...), 'eval' for eval(...)."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return ""


def test_no_eval_exec_or_dynamic_import_builtins():
    found = [(path, node.lineno, _name(node.func)) for path, tree in _sources() for _, node in _calls(tree)
             if _name(node.func) in FORBIDDEN_CALLS]
    assert not found, f"code-executing builtins in workbench: {found}"


def test_no_pickle_like_modules_are_imported():
    found = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [(path, node.lineno, n) for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
    assert not found, f"modules that unpickle or run code: {found}"


def test_numpy_load_never_allows_pickle():
    for path, tree in _sources():
        for _, node in _calls(tree):
            if _name(node.func) not in ("np.load", "numpy.load"):
                continue
            flags = {k.arg: k.value for k in node.keywords}
            explicit_false = isinstance(flags.get("allow_pickle"), ast.Constant) and \
                flags["allow_pickle"].value is False
            assert explicit_false or (path in SHIPPED_DATA_LOADS and "allow_pickle" not in flags), \
                f"{path}:{node.lineno}: np.load must pass allow_pickle=False (files may come from anywhere)"


def test_torch_and_yaml_loaders_are_not_used_on_files():
    bad = [(path, node.lineno, _name(node.func)) for path, tree in _sources() for _, node in _calls(tree)
           if _name(node.func).endswith(("torch.load", "yaml.load", "yaml.unsafe_load", "jit.load"))]
    assert not bad, bad


def test_imports_by_name_are_only_of_workbench_own_modules():
    sites = {(path, function) for path, tree in _sources() for function, node in _calls(tree)
             if _name(node.func).endswith("import_module")}
    unreviewed = sites - set(IMPORT_SITES)
    assert not unreviewed, f"review these import_module calls and add them to IMPORT_SITES: {sorted(unreviewed)}"


@pytest.mark.parametrize("name", ["os", "cpu.backend", "../cpu", "cuda; import os", ""])
def test_get_backend_refuses_any_other_name_before_importing(name):
    from workbench.backends import get_backend

    before = set(sys.modules)
    with pytest.raises(wb.WorkbenchError, match="backend"):
        get_backend(name)
    assert not {m for m in set(sys.modules) - before if not m.startswith("workbench")}


# ----------------------------------------------------------------------------- forged plans
@pytest.fixture(scope="module")
def plan_parts():
    model = one_node_model("Add", ["x", "w"], {"w": np.arange(4, dtype=np.float32)},
                           {"x": np.ones(4, np.float32)})
    data = wb.build(wb.load_onnx(model), wb.BuilderConfig(device="cpu")).serialize()
    header, blob = plan_format._split(data, "plan")
    return header, bytes(blob)


def _reseal(header: dict, blob: bytes) -> bytes:
    head = json.dumps(header).encode()
    body = plan_format._PREFIX.pack(plan_format.MAGIC, plan_format.FORMAT_VERSION, len(head)) + head
    body += b"\0" * (-len(body) % plan_format._ALIGN) + blob
    return body + hashlib.sha256(body).digest()


def _forge(header: dict, path: tuple, value) -> dict:
    """A deep copy of header with the value at `path` (keys and indices) replaced."""
    forged = json.loads(json.dumps(header))
    node = forged
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return forged


FORGERIES = {
    "backend module": (("backend",), "os"),
    "backend path": (("backend",), "cpu.backend"),
    "op as module path": (("network", "layers", 0, "op"), "os.system"),
    "domain as module": (("network", "layers", 0, "domain"), "builtins"),
    "plugin domain, unlisted": (("network", "layers", 0, "domain"), "workbench.plugin"),
    "plugin as module": (("plugins",), ["subprocess.call"]),
    "object dtype": (("network", "tensors", 0, 1), "object"),
    "str dtype": (("network", "tensors", 0, 1), "<U8"),
    "weight of objects": (("weights", 0, "dtype"), "object"),
    "attribute array of objects": (("network", "layers", 0, "attrs"),
                                   {"x": {"__ndarray__": "object", "shape": [1], "data": "AAAAAAAAAAA="}}),
    "tactic as code": (("tactics",), {"the_add": "__import__('os').system('true')"}),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_forged_names_in_a_plan_are_refused_without_importing_anything(plan_parts, forgery):
    header, blob = plan_parts
    path, value = FORGERIES[forgery]
    data = _reseal(_forge(header, path, value), blob)
    before = set(sys.modules)
    try:
        engine = wb.load_plan(data)
        engine.create_execution_context().execute({"x": np.ones(4, np.float32)})
    except wb.WorkbenchError as e:
        assert "rebuild" in str(e) or "register" in str(e) or "backend" in str(e), str(e)
    imported = {m for m in set(sys.modules) - before if not m.startswith(("workbench", "numpy"))}
    assert not imported, f"loading a forged plan imported {imported}"


def test_a_plan_header_never_unpickles_arrays(plan_parts):
    import pickle

    header, blob = plan_parts
    payload = {"__ndarray__": "object", "shape": [1],
               "data": __import__("base64").b64encode(pickle.dumps(object())).decode()}
    with pytest.raises(wb.PlanFormatError):
        wb.load_plan(_reseal(_forge(header, ("report", "evil"), payload), blob))


def test_the_cli_refuses_pickled_arrays(tmp_path):
    from workbench.cli import UsageError, read_array_file

    path = tmp_path / "evil.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UsageError, match="Python objects"):
        read_array_file(str(path))
    npz = tmp_path / "evil.npz"
    np.savez(npz, x=np.array([object()], dtype=object))
    with pytest.raises(UsageError, match="Python objects"):
        read_array_file(str(npz))


# ------------------------------------------------------------------------ the dims evaluator
PWNED = []


def _canary():
    PWNED.append(1)


@pytest.fixture(autouse=True)
def canary(monkeypatch):
    """A builtin that an expression would call if it were ever eval'ed."""
    import builtins

    monkeypatch.setattr(builtins, "wb_canary", _canary, raising=False)
    yield
    assert not PWNED, "a dim expression executed code"


def _check_evaluates_safely(expr: str) -> None:
    with time_limit(2.0):
        value = dims.evaluate(expr, {"batch": 3, "seq": 7, "n": 2})
    assert isinstance(value, int) or value == expr


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_dims_evaluator_on_generated_expressions(rng):
    _check_evaluates_safely(random_dim_expression(rng))


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("batchseqn0123456789+-*/%()., _[]'\"ceil:lambdawb_canary")),
               max_size=80))
def test_dims_evaluator_on_junk_text(text):
    _check_evaluates_safely(text)


@pytest.mark.parametrize("expr, value", [("batch*2", 6), ("ceil(seq/2)", 4), ("(batch+1)//2", 2), ("n-1", 1),
                                         ("batch*seq*4", 84)])
def test_dims_evaluator_still_evaluates_dims(expr, value):
    assert dims.evaluate(expr, {"batch": 3, "seq": 7, "n": 2}) == value


@pytest.mark.parametrize("expr", ["wb_canary()", "__import__('builtins').wb_canary()", "9" * 400 + "/1",
                                  "-" * 20000 + "1", "(" * 300 + "1" + ")" * 300, "1+" * 5000 + "1",
                                  "batch" * 5000, "(lambda: wb_canary())()", "[wb_canary() for _ in 'a']"])
def test_dims_evaluator_on_hostile_expressions(expr):
    _check_evaluates_safely(expr)
