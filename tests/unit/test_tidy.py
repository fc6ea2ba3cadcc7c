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
    return out


def test_state_is_deterministic():
    bad = [v for p in _py("state") for v in determinism_violations(p)]
    assert not bad, bad


def test_consensus_does_not_import_state():
    bad = [str(p) for p in _py("consensus") if "state" in imports(p)]
    assert not bad, bad


def test_the_checks_can_fail(tmp_path):
    f = tmp_path / "bad.py"
    f.write_text("import time\nimport trio\nx = 1.5\ny = 3 / 2\nz = {1, 2}\nw = hash(b'')\n"
                 "v = float(2)\nfrom state import kv\n")
    found = " ".join(determinism_violations(f))
    for what in ("imports time", "imports trio", "float literal", "true division",
                 "set literal", "uses hash", "uses float"):
        assert what in found
    assert "state" in imports(f)
