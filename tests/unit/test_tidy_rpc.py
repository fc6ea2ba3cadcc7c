"""rpc/ keeps no state of its own: what queries need beyond the state lives in the node's read
model (node/read_model.py), never in module-level caches.

The rule, checked on the syntax tree of every rpc/*.py: a module's state is fixed when its
import finishes.
1. A module-level name is a constant: written in ALL_CAPS (`MAX_PAGE`, `METHODS`), or `log`
   bound to `logging.getLogger(...)`. Filling a registry at import time (`METHODS.update(...)`
   at module level) is allowed.
2. A module-level value calls only the constructors in ALLOWED_CALLS: no instance of an
   arbitrary class, which could keep state behind a constant-looking name.
3. No function, method or lambda changes a module-level name: no item or attribute
   assignment or deletion on it, no call of a mutating method (MUTATORS) on it, and no
   `global` statement anywhere.
4. No class attribute is a dict, list or set display or comprehension (state shared by
   every instance), and no function is cached by `functools.cache` / `lru_cache`.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ALLOWED_CALLS = {"logging.getLogger", "frozenset", "tuple", "dict", "re.compile",
                 "MappingProxyType", "types.MappingProxyType"}
MUTATORS = {"append", "extend", "insert", "update", "setdefault", "pop", "popitem", "clear",
            "remove", "discard", "add", "sort", "reverse", "appendleft", "extendleft",
            "popleft", "rotate", "__setitem__", "__delitem__", "move_to_end"}
CACHE_DECORATORS = {"cache", "lru_cache", "functools.cache", "functools.lru_cache"}
MUTABLE_DISPLAYS = (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return _dotted(node.func)
    return "?"


def _module_statements(body):
    """Statements that run at import time (inside module-level if/try/with/for too)."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.If | ast.For | ast.While | ast.With | ast.Try):
            for block in ("body", "orelse", "finalbody"):
                yield from _module_statements(getattr(stmt, block, []))
            for h in getattr(stmt, "handlers", []):
                yield from _module_statements(h.body)


def _assigned(stmt) -> tuple[list, ast.AST | None]:
    if isinstance(stmt, ast.Assign):
        return stmt.targets, stmt.value
    if isinstance(stmt, ast.AnnAssign | ast.AugAssign):
        return [stmt.target], stmt.value
    return [], None


def _module_names(tree, where) -> tuple[set[str], list[str]]:
    """The module-level names and the violations of rules 1 and 2."""
    names, out = set(), []
    for stmt in _module_statements(tree.body):
        targets, value = _assigned(stmt)
        for t in targets:
            for n in ast.walk(t):
                if not (isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)):
                    continue
                names.add(n.id)
                logger = isinstance(value, ast.Call) and _dotted(value) == "logging.getLogger"
                if not (n.id.isupper() or (n.id == "log" and logger)):
                    out.append(f"{where(stmt)} module-level name {n.id!r} is not an ALL_CAPS "
                               "constant")
        for call in ast.walk(value) if value is not None else ():
            if isinstance(call, ast.Call) and _dotted(call) not in ALLOWED_CALLS:
                out.append(f"{where(stmt)} module-level value calls {_dotted(call)}() (allowed:"
                           f" {', '.join(sorted(ALLOWED_CALLS))})")
    return names, out


def _locals(fn) -> set[str]:
    a = fn.args
    params = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs}
    params |= {x.arg for x in (a.vararg, a.kwarg) if x is not None}
    return params | {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)
                     and isinstance(n.ctx, ast.Store)}


def _mutations(fn, module_names: set[str], where) -> list[str]:
    """Rule 3 inside one function: changes to a module-level name it does not shadow."""
    shared = module_names - _locals(fn)
    out = []
    for n in ast.walk(fn):
        if isinstance(n, ast.Subscript | ast.Attribute) and isinstance(n.ctx, ast.Store | ast.Del):
            base = n.value
            if isinstance(base, ast.Name) and base.id in shared:
                out.append(f"{where(n)} changes module-level {base.id!r} in a function")
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and \
                n.func.attr in MUTATORS and isinstance(n.func.value, ast.Name) and \
                n.func.value.id in shared:
            out.append(f"{where(n)} calls {n.func.value.id}.{n.func.attr}() on module-level "
                       f"{n.func.value.id!r} in a function")
    return out


def module_state_violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())

    def where(node) -> str:
        return f"{path.name}:{getattr(node, 'lineno', '?')}"

    names, out = _module_names(tree, where)
    for n in ast.walk(tree):
        if isinstance(n, ast.Global):
            out.append(f"{where(n)} `global {', '.join(n.names)}`: a function rebinds module "
                       "state")
        if isinstance(n, FUNCTIONS):
            out += _mutations(n, names, where)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef):
            out += [f"{where(n)} {n.name} is cached by {_dotted(d)} (a module-level cache)"
                    for d in n.decorator_list if _dotted(d) in CACHE_DECORATORS]
        if isinstance(n, ast.ClassDef):
            for stmt in n.body:
                _, value = _assigned(stmt)
                if isinstance(value, MUTABLE_DISPLAYS):
                    out.append(f"{where(stmt)} class {n.name} has a mutable class attribute "
                               "(shared by every instance)")
    return sorted(set(out))


def test_rpc_keeps_no_module_level_state():
    files = sorted((ROOT / "rpc").glob("*.py"))
    assert len(files) >= 5
    bad = [v for p in files for v in module_state_violations(p)]
    assert not bad, "\n".join(bad)


BAD_SAMPLE = '''
import functools
import logging
log = logging.getLogger("x")
MAX = 10
METHODS = {"a": 1}
METHODS.update({"b": 2})          # import time: allowed
_books: dict = {}                 # 1: not a constant
CACHE = {}
STATE = Tracker()                 # 2: an instance at module level
CAPS = 1

def get(app):
    CACHE[id(app)] = app          # 3: item assignment
    CACHE.setdefault(1, 2)        # 3: mutating call
    del CACHE[1]                  # 3: deletion
    STATE.seen = True             # 3: attribute assignment

def count():
    global CAPS                   # 3: global
    CAPS += 1

class Index:
    fills = []                    # 4: shared by every instance

@functools.lru_cache(maxsize=None)
def cached(x):                    # 4
    return x

def fine(CACHE):                  # a parameter shadows the module-level name
    CACHE["x"] = 1
    out = {}
    out["y"] = MAX
    return out
'''


def test_the_rpc_check_can_fail(tmp_path):
    f = tmp_path / "bad.py"
    f.write_text(BAD_SAMPLE)
    found = module_state_violations(f)
    text = "\n".join(found)
    for what in ("name '_books' is not an ALL_CAPS", "calls Tracker()", "bad.py:14 changes "
                 "module-level 'CACHE'", "calls CACHE.setdefault()", "bad.py:16 changes "
                 "module-level 'CACHE'", "bad.py:17 changes module-level 'STATE'",
                 "`global CAPS`", "class Index has a mutable class attribute",
                 "cached is cached by functools.lru_cache"):
        assert what in text, (what, found)
    assert len(found) == 9, found   # and nothing in `fine`, `log`, MAX or the import-time update
