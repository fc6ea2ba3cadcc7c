"""JSON-RPC methods for state sync (node/snapshot.py) and the sync progress.

* `sync_context(height)`: what a node starting from a snapshot at `height` needs besides the
  state, as base64 of the stored bytes: `block` (height), `next_block` (height + 1, whose
  last_commit is the commit of height), `results` (the tx results of height) and
  `validator_sets` {height, height + 1, height + 2: the sets with proposer priorities}. The
  asking node trusts none of it: it checks it against the block hash it was given.
"""

import base64

from rpc import params as P
from rpc.errors import RPCCode, RPCError


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


async def sync_context(app, p: dict) -> dict:
    h = P.optional_height(p)
    tip, base = app.tip.height, app.store.base_height()
    if h is None or not base <= h < tip:
        raise RPCError(RPCCode.HEIGHT_NOT_AVAILABLE,
                       f"height {h} is not available for state sync: this node serves "
                       f"{base}..{tip - 1} (height + 1 must be committed)")
    store = app.store
    parts = {"block": store.block_bytes(h), "next_block": store.block_bytes(h + 1),
             "results": store.results_bytes(h)}
    vals = {str(v): store.valset_bytes(v) for v in (h, h + 1, h + 2)}
    if any(x is None for x in (*parts.values(), *vals.values())):
        raise RPCError(RPCCode.HEIGHT_NOT_AVAILABLE, f"height {h}: not all of its block, "
                       "results and validator sets are stored")
    return {"height": str(h), **{k: _b64(v) for k, v in parts.items()},
            "validator_sets": {k: _b64(v) for k, v in vals.items()}}


SYNC_METHODS = {fn.__name__: fn for fn in (sync_context,)}
