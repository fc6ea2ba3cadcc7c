"""JSON-RPC methods: CometBFT-shaped where the name is CometBFT's, plus this chain's own.

Each method takes the Application and a dict of params (already normalised from a JSON
object, a JSON array or a URI query; each value is read by rpc/params.py) and returns a
JSON-ready result or raises RPCError.
Heights and other 64-bit numbers are decimal strings (CometBFT's convention); amounts
are decimal strings in asset units; hashes are upper-case hex (CometBFT) and addresses
lower-case hex.
"""

import base64
import binascii
import hashlib

from node.app import Application
from node.config import parse_duration_ms
from node.genesis import ms_to_rfc3339
from node.keys import PUB_TYPE
from consensus.types import Block, Commit
from rpc import params as P
from rpc.errors import RPCCode, RPCError
from state import ledger, nonces, params
from state import evidence as state_evidence
from state.amounts import format_amount
from state.codec import decode, load
from state.machine import P_FAUCET_LAST, TxResult, last_block

VERSION = "perpchain/0.1.0"


def _hex(b: bytes) -> str:
    return b.hex().upper()


def tx_param(p: dict) -> bytes:
    return P.tx_bytes(P.param(p, "tx", 0))


def _height_param(app: Application, p: dict) -> int:
    """A stored block height: absent = the latest; -32002 outside 1..latest."""
    h = P.optional_height(p)
    latest = app.tip.height
    if latest == 0:
        raise RPCError(RPCCode.HEIGHT_NOT_AVAILABLE, "no block has been committed yet")
    if h is None:
        return latest
    base = app.store.base_height()   # above 1 if pruned or started from a snapshot
    if not base <= h <= latest:
        raise RPCError(RPCCode.HEIGHT_NOT_AVAILABLE,
                       f"height {h} is not available: blocks {base}..{latest} are stored")
    return h


def tx_result_json(r: TxResult) -> dict:
    return {"code": r.code, "data": "", "log": r.log, "info": "", "gas_wanted": "0",
            "gas_used": "0", "codespace": r.codespace, "events": _events_json(r.events)}


def check_tx_json(th: bytes, r: TxResult) -> dict:
    return {"code": r.code, "data": "", "log": r.log, "codespace": r.codespace,
            "hash": _hex(th)}


# -- methods ---------------------------------------------------------------------------

async def health(app: Application, p: dict) -> dict:
    return {}


async def status(app: Application, p: dict) -> dict:
    tip = app.tip
    me = app.node_key
    val = app.validator_key.pub_key if app.validator_key else None
    base = app.store.base_height()   # 1, or above if pruned or started from a snapshot
    first = app.store.block_bytes(base)
    first_block = Block.decode(first) if first else None
    best_peer, behind = app.sync_progress()
    return {
        "node_info": {
            "protocol_version": {"p2p": "8", "block": "11", "app": "1"},
            "id": me.node_id, "listen_addr": app.cfg.p2p.laddr, "network": app.chain_id,
            "version": VERSION, "channels": "", "moniker": app.cfg.moniker,
            "other": {"tx_index": "on", "rpc_address": app.cfg.rpc.laddr},
        },
        "sync_info": {
            "latest_block_hash": _hex(tip.block_hash),
            "latest_app_hash": _hex(tip.app_hash),
            "latest_block_height": str(tip.height),
            "latest_block_time": ms_to_rfc3339(tip.time_ms),
            "earliest_block_hash": _hex(first_block.hash()) if first_block else "",
            "earliest_app_hash": _hex(first_block.header.app_hash) if first_block else "",
            "earliest_block_height": str(base) if first_block else "0",
            "earliest_block_time": ms_to_rfc3339(first_block.header.time_ms) if first_block else "",
            "catching_up": app.catching_up(),
            "best_peer_height": str(best_peer),   # the highest height a live peer reported
            "heights_behind": str(behind),        # how far this node's tip is below it
        },
        "validator_info": {
            "address": val.hex() if val else "",
            "pub_key": {"type": PUB_TYPE, "value": base64.b64encode(val).decode() if val else ""},
            "voting_power": str(app.validators.power_of(val) if val else 0),
        },
    }


def _block_id(h: bytes) -> dict:
    return {"hash": _hex(h), "parts": {"total": 1, "hash": _hex(h)}}


def _commit_json(c: Commit) -> dict:
    return {"height": str(c.height), "round": c.round, "block_id": _block_id(c.block_hash),
            "signatures": [{"block_id_flag": 2, "validator_address": s.validator.hex(),
                            "timestamp": ms_to_rfc3339(s.time_ms),
                            "signature": base64.b64encode(s.signature).decode()}
                           for s in c.sigs]}


def _header_json(hd) -> dict:
    return {
        "version": {"block": "11", "app": "1"}, "chain_id": hd.chain_id,
        "height": str(hd.height), "time": ms_to_rfc3339(hd.time_ms),
        "last_block_id": _block_id(hd.last_block_hash),
        "last_commit_hash": _hex(hd.last_commit_hash), "data_hash": _hex(hd.data_hash),
        "validators_hash": _hex(hd.validators_hash),
        "next_validators_hash": _hex(hd.validators_hash), "consensus_hash": "",
        "app_hash": _hex(hd.app_hash), "last_results_hash": _hex(hd.last_results_hash),
        "evidence_hash": _hex(hd.evidence_hash), "proposer_address": hd.proposer.hex(),
    }


async def block(app: Application, p: dict) -> dict:
    h = _height_param(app, p)
    b = Block.decode(app.store.block_bytes(h))
    return {
        "block_id": _block_id(b.hash()),
        "block": {
            "header": _header_json(b.header),
            "data": {"txs": [base64.b64encode(t).decode() for t in b.txs]},
            "evidence": {"evidence": [{"type": "perpchain/DuplicateVoteEvidence",
                                       "vote_a": base64.b64encode(a).decode(),
                                       "vote_b": base64.b64encode(c).decode()}
                                      for a, c in b.evidence]},
            "last_commit": None if b.last_commit is None else _commit_json(b.last_commit),
        },
    }


BLOCKCHAIN_MAX = 20


async def blockchain(app: Application, p: dict) -> dict:
    """Headers of up to 20 blocks, newest first (CometBFT's `blockchain`)."""
    latest = app.tip.height
    lo_param = P.optional_height(p, "minHeight", 0)
    hi_param = P.optional_height(p, "maxHeight", 1)
    hi = latest if not hi_param else min(hi_param, latest)
    lo = max(lo_param or 1, app.store.base_height(), hi - BLOCKCHAIN_MAX + 1)
    if lo > hi:
        raise RPCError(RPCCode.HEIGHT_NOT_AVAILABLE, f"no blocks in [{lo}, {hi}]; latest is {latest}")
    metas = []
    for height in range(hi, lo - 1, -1):
        raw = app.store.block_bytes(height)
        b = Block.decode(raw)
        metas.append({"block_id": _block_id(b.hash()), "block_size": str(len(raw)),
                      "header": _header_json(b.header), "num_txs": str(len(b.txs))})
    return {"last_height": str(latest), "block_metas": metas}


async def commit(app: Application, p: dict) -> dict:
    h = _height_param(app, p)
    b = Block.decode(app.store.block_bytes(h))
    c = Commit.from_wire(decode(app.store.commit_bytes(h)))
    return {"signed_header": {"header": (await block(app, {"height": h}))["block"]["header"],
                              "commit": _commit_json(c)},
            "canonical": True, "app_hash_after": _hex(app.store.app_hash_at(h)),
            "block_hash": _hex(b.hash())}


def _events_json(events) -> list[dict]:
    return [{"type": e.type, "attributes": [{"key": k, "value": v, "index": True}
                                            for k, v in e.attrs]} for e in events]


async def block_results(app: Application, p: dict) -> dict:
    """The stored results of a block (CometBFT's `block_results`): one receipt per tx and
    the block's own begin/end-block events. sha256 of their encoding is the next block's
    `last_results_hash` (docs/PROTOCOL.md 4.1), so a client can check it."""
    h = _height_param(app, p)
    n_txs = len(Block.decode(app.store.block_bytes(h)).txs)
    rbytes = app.store.results_bytes(h)
    results = [TxResult.from_wire(r) for r in decode(rbytes)]
    block_events = results[n_txs].events if len(results) > n_txs else ()
    return {"height": str(h), "txs_results": [tx_result_json(r) for r in results[:n_txs]],
            "finalize_block_events": _events_json(block_events),
            "results_hash": _hex(hashlib.sha256(rbytes).digest()),
            "app_hash": _hex(app.store.app_hash_at(h))}


async def tx(app: Application, p: dict) -> dict:
    """A committed tx by hash, from the store's index (node/store.py): its index entry
    and its block's results are read, never its block. Runs in an RPC worker thread."""
    th = P.hash_bytes(P.param(p, "hash", 0))
    rec = app.store.tx_record(th)
    if rec is None:
        _tx_pruned(app, th)
        pending = " (it is pending in the mempool)" if app.mempool.get(th) else ""
        raise RPCError(RPCCode.TX_NOT_FOUND, f"tx {_hex(th)} not found in any block{pending}")
    height, index, raw, result = rec
    return {"hash": _hex(th), "height": str(height), "index": index,
            "tx_result": tx_result_json(TxResult.from_wire(result)),
            "tx": base64.b64encode(raw).decode()}


def _tx_pruned(app: Application, th: bytes) -> None:
    """-32002 naming the height if the index places `th` in a block this node pruned
    ([store] keep_blocks: index entries outlive their blocks, docs/OPERATIONS.md)."""
    loc = app.store.tx_location(th)
    base = app.store.base_height()
    if loc is not None and loc[0] < base:
        raise RPCError(RPCCode.HEIGHT_NOT_AVAILABLE,
                       f"tx {_hex(th)} was committed at height {loc[0]} (index {loc[1]}), "
                       f"whose block this node pruned: height {loc[0]} is not available, "
                       f"lowest height is {base}",
                       f"height={loc[0]} index={loc[1]} lowest_height={base}")


async def broadcast_tx_sync(app: Application, p: dict) -> dict:
    raw = tx_param(p)
    [(th, r)] = await app.submit([raw])
    return check_tx_json(th, r)


async def broadcast_tx_commit(app: Application, p: dict) -> dict:
    raw = tx_param(p)
    [(th, r)] = await app.submit([raw])
    check = check_tx_json(th, r)
    if r.code != 0:
        return {"check_tx": check, "tx_result": tx_result_json(TxResult(0)), "hash": _hex(th),
                "height": "0"}
    timeout = parse_duration_ms(app.cfg.rpc.timeout_broadcast_tx_commit) / 1000
    done = await app.wait_for_tx(th, timeout)
    if done is None:
        raise RPCError(RPCCode.TIMEOUT, f"tx {_hex(th)} was accepted into the mempool but not "
                       f"committed within {timeout:g}s; query it later with the `tx` method")
    height, _, result = done
    return {"check_tx": check, "tx_result": tx_result_json(result), "hash": _hex(th),
            "height": str(height)}


async def num_unconfirmed_txs(app: Application, p: dict) -> dict:
    return {"n_txs": str(len(app.mempool)), "total": str(len(app.mempool)),
            "total_bytes": str(app.mempool.bytes), "txs": None}


async def account(app: Application, p: dict) -> dict:
    addr = P.address_bytes(P.param(p, "address", 0))
    view = app.store.state
    bal = {sym: format_amount(q, params.asset_decimals(view, sym))
           for sym, q in ledger.balances(view, addr).items()}
    last_faucet = view.get(P_FAUCET_LAST + addr)
    height, _ = last_block(view)
    out = {"address": addr.hex(), "height": str(height), "balances": bal,
           "nonces": [str(n) for n in nonces.nonces(view, addr)],
           "last_faucet_ms": None if last_faucet is None else str(load(last_faucet))}
    from rpc.lending_methods import account_lending
    lending = account_lending(view, addr)
    if lending is not None:  # (a chain with lending pools: state/lending_pools.py)
        out["lending"] = lending
    return out


async def assets(app: Application, p: dict) -> dict:
    view = app.store.state
    f = params.faucet(view)
    return {"quote_asset": params.quote_asset(view),
            "assets": [{"symbol": s, "decimals": params.asset_decimals(view, s)}
                       for s in params.list_assets(view)],
            "faucet": None if f is None else {
                "asset": f.asset, "interval_ms": str(f.interval_ms),
                "amount": format_amount(f.amount_quantums, params.asset_decimals(view, f.asset))}}


async def net_info(app: Application, p: dict) -> dict:
    net = app.p2p
    peers = [] if net is None else [
        {"node_info": {"id": pid, "network": app.chain_id}, "is_outbound": peer.outbound,
         "remote_ip": _remote_ip(peer)} for pid, peer in sorted(net.peers.items())]
    return {"listening": net is not None, "listeners": [app.cfg.p2p.laddr],
            "n_peers": str(len(peers)), "peers": peers}


def _remote_ip(peer) -> str:
    try:
        return peer.stream.socket.getpeername()[0]
    except OSError:
        return ""


async def validators(app: Application, p: dict) -> dict:
    """The validator set of a height: any stored one up to two heights past the tip (the
    sets of the next two heights are already fixed). Default: the next height's."""
    h = P.optional_height(p)
    if h is None:
        h = app.tip.height + 1
    try:
        if h < 1:
            raise KeyError(h)
        sel = app.selector(h)
    except KeyError:
        raise RPCError(RPCCode.HEIGHT_NOT_AVAILABLE, f"no validator set stored for height {h}; "
                       f"known up to {app.tip.height + 2}") from None
    prios = sel.priorities
    vals = [{"address": pk.hex(), "pub_key": {"type": PUB_TYPE, "value": base64.b64encode(pk).decode()},
             "voting_power": str(power), "proposer_priority": str(prios[pk])}
            for pk, power in sel.powers.items()]
    return {"block_height": str(h), "validators": vals, "count": str(len(vals)),
            "total": str(len(vals))}


async def consensus_state(app: Application, p: dict) -> dict:
    d = app.driver
    rs = None if d is None else d.rs
    if rs is None:
        return {"round_state": {"height/round/step": f"{app.tip.height + 1}/0/0"}}
    return {"round_state": {"height/round/step": f"{rs.height}/{rs.round}/{int(rs.step)}",
                            "height": str(rs.height), "round": rs.round, "step": int(rs.step),
                            "proposer": {"address": rs.proposer(rs.round).hex()},
                            "locked_round": rs.locked_round, "valid_round": rs.valid_round}}


async def evidence(app: Application, p: dict) -> dict:
    """Double signs recorded in state (of one validator if `validator` is given)."""
    v = P.param(p, "validator", 0, required=False)
    who = None if v in (None, "") else P.address_bytes(v, "validator")
    rows = state_evidence.recorded(app.store.state, who)
    return {"height": str(app.tip.height), "evidence": [
        {"validator": r["validator"].hex(), "height": str(r["height"]), "round": r["round"],
         "vote_type": r["vote_type"], "block_height": str(r["block_height"]),
         "vote_a": base64.b64encode(r["vote_a"]).decode(),
         "vote_b": base64.b64encode(r["vote_b"]).decode()} for r in rows]}


async def broadcast_evidence(app: Application, p: dict) -> dict:
    """Submit double-sign evidence (two conflicting votes, base64), as CometBFT's method."""
    ev = P.param(p, "evidence", 0)
    try:
        a = base64.b64decode(ev["vote_a"], validate=True)
        b = base64.b64decode(ev["vote_b"], validate=True)
    except (TypeError, KeyError, ValueError, binascii.Error):
        raise RPCError(RPCCode.INVALID_PARAMS, "evidence must be {\"vote_a\": base64, "
                       "\"vote_b\": base64} of two encoded votes") from None
    try:
        app.driver.submit_evidence(a, b)
    except ValueError as e:
        raise RPCError(RPCCode.INVALID_PARAMS, f"not valid evidence: {e}") from None
    return {"hash": _hex(hashlib.sha256(min(a, b) + max(a, b)).digest())}


METHODS = {f.__name__: f for f in (health, status, block, block_results, commit, tx,
                                   broadcast_tx_sync,
                                   broadcast_tx_commit, num_unconfirmed_txs, account, assets,
                                   net_info, validators, consensus_state, blockchain, evidence,
                                   broadcast_evidence)}

from rpc.trading_methods import TRADING_METHODS  # noqa: E402  (the exchange's methods)
METHODS.update(TRADING_METHODS)
from rpc.funding_methods import FUNDING_METHODS  # noqa: E402
METHODS.update(FUNDING_METHODS)
from rpc.risk_methods import RISK_METHODS  # noqa: E402  (liquidations, insurance fund, ADL)
METHODS.update(RISK_METHODS)
from rpc.lending_methods import LENDING_METHODS  # noqa: E402  (pools, interest, borrow limits)
METHODS.update(LENDING_METHODS)
from rpc.sync_methods import SYNC_METHODS  # noqa: E402  (state sync: node/snapshot.py)
METHODS.update(SYNC_METHODS)
from rpc.dashboard_methods import DASHBOARD_METHODS  # noqa: E402  (validator votes, market rows)
METHODS.update(DASHBOARD_METHODS)
