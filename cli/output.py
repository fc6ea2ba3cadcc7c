"""What the client commands print: aligned tables, tx outcomes, and one-line errors.

    fail("message")                   prints `error: message` to stderr, exits 1 (or `code`)
    with client_errors(url): ...      turns a client exception into one such line and an exit
    print(table(["a", "b"], rows))    columns padded to their widest cell

Exit status: 0 on success, 1 when the chain or a tx said no (or the node cannot be reached),
2 on bad usage (a malformed amount, an unknown market, a bad key file).
"""

import json
import sys
from contextlib import contextmanager


def fail(msg: str, code: int = 1) -> "NoReturn":  # noqa: F821
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(code)


@contextmanager
def client_errors(node_url: str):
    """Exit with one clear line for whatever the node, the network or the input said."""
    import httpx

    from node.keys import KeyFileError
    from rpc.client import RPCClientError, TxRejected

    try:
        yield
    except TxRejected as e:
        fail(str(e))
    except RPCClientError as e:
        if e.code == -32001:   # `tx` still says "not found" when the wait ran out
            fail(f"the tx was accepted but not seen in a block in time ({e.message})")
        fail(str(e))
    except KeyFileError as e:
        fail(str(e), 2)
    except httpx.HTTPError as e:
        fail(f"cannot reach the node at {node_url}: {str(e) or type(e).__name__}")
    except json.JSONDecodeError:
        fail(f"{node_url} did not answer with JSON: is it a perpchain node's RPC address?")
    except ValueError as e:   # bad decimal amounts, unknown markets or assets
        fail(str(e), 2)


def table(headers: list[str], rows: list[list], right: set[int] | None = None) -> str:
    """A plain text table; the columns whose index is in `right` are right-aligned."""
    right = right or set()
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in r]
                                           for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join(line(r) for r in cells)


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


def outcome_dict(out) -> dict:
    """A committed tx (rpc.client.TxOutcome) as plain JSON."""
    return {"hash": out.hash, "height": out.height, "code": out.code, "log": out.log,
            "events": [{"type": ev["type"],
                        "attributes": {x["key"]: x["value"] for x in ev["attributes"]}}
                       for ev in out.events]}


def print_outcome(out, as_json: bool = False) -> None:
    """`committed at height H: tx HASH code 0` and one line per event, or the JSON form."""
    if as_json:
        print_json(outcome_dict(out))
        return
    print(f"committed at height {out.height}: tx {out.hash} code {out.code}")
    for ev in out.events:
        attrs = " ".join(f"{x['key']}={x['value']}" for x in ev["attributes"])
        print(f"  {ev['type']}: {attrs}")
