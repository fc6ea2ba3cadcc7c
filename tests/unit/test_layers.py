"""The packages form layers: no import cycle between them, and each imports only the packages
LAYERS allows it (every import counts, those inside functions too).

    state, consensus      the rules and the BFT core (their mutual rule: tests/unit/test_tidy.py)
    node                  runs a node: store, mempool, p2p, the Application, its read model
    rpc                   serves a node (JSON-RPC) and is its Python client
    localnet              starts local clusters (processes of the command), loads them
    cli                   the `perpchain` command: wires node, rpc and localnet
    bench                 in-process benchmarks
    tests                 may import anything; nothing imports it
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LAYERS = {
    "state": set(),
    "consensus": {"state"},   # (test_tidy.py forbids even this one)
    "node": {"state", "consensus"},
    "rpc": {"state", "consensus", "node"},
    "localnet": {"state", "consensus", "node", "rpc"},
    "cli": {"state", "consensus", "node", "rpc", "localnet"},
    "bench": {"state", "consensus", "node", "localnet"},
    "tests": {"state", "consensus", "node", "rpc", "localnet", "cli", "bench"},
}


def packages(root: Path) -> list[str]:
    return sorted(p.parent.name for p in root.glob("*/__init__.py"))


def _imported_tops(path: Path) -> set[str]:
    out = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.Import):
            out |= {a.name.split(".")[0] for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
            out.add(n.module.split(".")[0])
    return out


def import_graph(root: Path) -> dict[str, dict[str, str]]:
    """package -> {imported package: the first file (relative to root) importing it}."""
    pkgs = set(packages(root))
    graph: dict[str, dict[str, str]] = {p: {} for p in sorted(pkgs)}
    for pkg in sorted(pkgs):
        for f in sorted((root / pkg).rglob("*.py")):
            for dep in sorted(_imported_tops(f) & pkgs - {pkg}):
                graph[pkg].setdefault(dep, str(f.relative_to(root)))
    return graph


def find_cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}   # 1: on the current path, 2: done
    path: list[str] = []

    def visit(p: str) -> list[str] | None:
        state[p] = 1
        path.append(p)
        for q in graph.get(p, {}):
            if state.get(q) == 1:
                return path[path.index(q):] + [q]
            if q not in state and (c := visit(q)) is not None:
                return c
        path.pop()
        state[p] = 2
        return None

    for p in graph:
        if p not in state and (c := visit(p)) is not None:
            return c
    return None


def layer_violations(graph: dict[str, dict[str, str]], layers=LAYERS) -> list[str]:
    out = [f"package {p!r} has no entry in LAYERS" for p in graph if p not in layers]
    for p, deps in graph.items():
        for q, where in deps.items():
            if p in layers and q not in layers[p]:
                out.append(f"{where}: {p} imports {q}")
    return out


def test_the_packages_are_layered_without_cycles():
    graph = import_graph(ROOT)
    assert {"state", "consensus", "node", "rpc", "localnet", "cli", "bench"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle) + ": " + ", ".join(
        graph[a][b] for a, b in zip(cycle, cycle[1:]))
    bad = layer_violations(graph)
    assert not bad, "\n".join(bad)
    assert "node" in graph["rpc"] and "rpc" in graph["cli"]   # the graph is really read


def test_the_layer_check_can_fail(tmp_path):
    files = {"node/__init__.py": "", "node/app.py": "import trio\n\ndef f():\n"
             "    from rpc.server import serve\n",   # an import inside a function counts
             "rpc/__init__.py": "", "rpc/server.py": "from node.app import f\n",
             "bench/__init__.py": "", "bench/b.py": "from tests.chain_helpers import key\n",
             "tests/__init__.py": "", "extra/__init__.py": ""}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["node"] == {"rpc": "node/app.py"} and graph["rpc"] == {"node": "rpc/server.py"}
    assert find_cycle(graph) in (["node", "rpc", "node"], ["rpc", "node", "rpc"])
    assert sorted(layer_violations(graph)) == [
        "bench/b.py: bench imports tests", "node/app.py: node imports rpc",
        "package 'extra' has no entry in LAYERS"]
    assert find_cycle({"a": {"b": ""}, "b": {"c": ""}, "c": {}}) is None


def test_nothing_in_the_repository_points_outside_it():
    """Users get the repository alone: no file may send them to a design document or a folder
    beside it."""
    files = [ROOT / "README.md", ROOT / "pyproject.toml", ROOT / ".ci" / "run"]
    for folder in ("state", "consensus", "node", "rpc", "cli", "localnet", "bench", "tests",
                   "docs"):
        files += [p for p in sorted((ROOT / folder).rglob("*")) if p.suffix in (".py", ".md")]
    needles = ("DESIGN" + ".md", "../" + "shared")
    bad = [f"{p.relative_to(ROOT)}: {n}" for p in files for n in needles if n in p.read_text()]
    assert not bad, bad
