"""Layering, enforced: state/ is deterministic and I/O-free; consensus/ never imports state/."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BANNED_IN_STATE = {"trio", "plyvel", "socket", "time", "datetime", "random", "secrets",
                   "threading", "asyncio", "os", "subprocess", "node", "rpc", "consensus",
                   "decimal", "fractions", "math"}


def _py(folder: str):
    return sorted((ROOT / folder).rglob("*.py"))


def imports(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods.add(node.module.split(".")[0])
    return mods


def determinism_violations(path: Path) -> list[str]:
    """Banned imports, floats, true division, hash() and sets (hash-ordered) in a file."""
    out = [f"{path.name}: imports {m}" for m in sorted(imports(path) & BANNED_IN_STATE)]
    for node in ast.walk(ast.parse(path.read_text())):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Constant) and isinstance(node.value, float):
            out.append(f"{where} float literal")
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and \
                node.id in ("float", "hash", "set", "frozenset"):
            out.append(f"{where} uses {node.id}")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            out.append(f"{where} true division (use // with a stated rounding)")
        elif isinstance(node, ast.Set | ast.SetComp):
            out.append(f"{where} set literal (iteration in hash order)")
        elif isinstance(node, ast.BinOp) and \
                isinstance(node.op, ast.BitAnd | ast.BitOr | ast.BitXor | ast.Sub) and \
                any(_is_view_call(x) for x in (node.left, node.right)):
            out.append(f"{where} set operation on dict keys/items (iteration in hash order)")
    return out


def _is_view_call(node) -> bool:
    """`x.keys()` or `x.items()`: a set-like view; & | ^ - on it make a hash-ordered set."""
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
        node.func.attr in ("keys", "items")


def test_state_is_deterministic():
    bad = [v for p in _py("state") for v in determinism_violations(p)]
    assert not bad, bad


def test_consensus_does_not_import_state():
    bad = [str(p) for p in _py("consensus") if "state" in imports(p)]
    assert not bad, bad


def test_the_checks_can_fail(tmp_path):
    f = tmp_path / "bad.py"
    f.write_text("import time\nimport trio\nx = 1.5\ny = 3 / 2\nz = {1, 2}\nw = hash(b'')\n"
                 "v = float(2)\nfrom state import kv\nu = a.keys() & b.keys()\n")
    found = " ".join(determinism_violations(f))
    for what in ("imports time", "imports trio", "float literal", "true division",
                 "set literal", "uses hash", "uses float", "set operation on dict keys"):
        assert what in found
    assert "state" in imports(f)


# -- ratchets: one rule in one place, short functions, speed only in the leaf structures -------

MAX_FUNCTION_LINES = 70
# The leaf structures: where speed may bend the style (docs/ARCHITECTURE.md).
LEAVES = {"book.py", "kv.py", "codec.py"}


def long_functions(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            n = node.end_lineno - node.lineno + 1
            if n > MAX_FUNCTION_LINES:
                out.append(f"{path.name}:{node.lineno} {node.name} is {n} lines")
    return out


def leaf_only_tricks(path: Path) -> list[str]:
    """`object.__new__` (constructors bypassed), descriptor `__set__` calls and direct
    `.writes[...]` assignments (the overlay bypassed)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute) and node.attr in ("__new__", "__set__"):
            out.append(f"{where} uses .{node.attr}")
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and \
                node.value.attr == "writes" and isinstance(node.ctx, ast.Store):
            out.append(f"{where} assigns into .writes[...]")
    return out


def test_state_functions_are_short():
    bad = [v for p in _py("state") for v in long_functions(p)]
    assert not bad, bad


def test_constructor_and_overlay_bypasses_only_in_leaf_structures():
    bad = [v for p in _py("state") if p.name not in LEAVES for v in leaf_only_tricks(p)]
    assert not bad, bad


def test_the_ratchets_can_fail(tmp_path):
    f = tmp_path / "bad.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    f.write_text(f"def long():\n{body}\n\n"
                 "_new = object.__new__\n"
                 "Event.__dict__['type'].__set__(e, 'x')\n"
                 "view.writes[b'k'] = 1\n")
    assert long_functions(f) == [f"bad.py:1 long is {MAX_FUNCTION_LINES + 1} lines"]
    found = " ".join(leaf_only_tricks(f))
    assert "uses .__new__" in found and "uses .__set__" in found
    assert "assigns into .writes[...]" in found
