"""apply_block: the one entry point of the state machine (DESIGN.md §5.1).

    apply_block(view, block, prev_app_hash, known) -> BlockResult

checks the block header against the state, applies each tx in order, runs the end-of-block
steps in a fixed order (none yet: oracle, triggers, funding, interest and liquidation come
with later issues), and returns per-tx results, the sorted write set and the new app hash.
It never writes to `view`: the node commits `writes` atomically with the block.

A tx is applied in two phases, each in its own overlay:
1. authentication: decode, chain id, signature, nonce. If this fails the tx leaves no
   trace. If it passes, the nonce is consumed even if phase 2 fails, so a rejected tx
   can never be replayed later.
2. the action: on TxError its writes are dropped and the code goes into the receipt.
Any other exception is a bug and propagates: the node halts rather than diverge.
"""

from dataclasses import dataclass
from typing import Mapping

from state import accounts, constants as C, params
from state.amounts import format_amount
from state.codec import encode, load
from state.errors import Code, InvalidBlock, TxError
from state.hashing import chain_app_hash
from state.kv import KVView, Overlay
from state.tx import Tx, decode_tx, tx_hash, verify_tx

K_LAST_BLOCK = b"meta/last_block"   # [height, time_ms]
P_FAUCET_LAST = b"faucet/last/"     # + addr -> time_ms of the last faucet payout


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    attrs: tuple[tuple[str, str], ...]

    def to_wire(self) -> list:
        return [self.type, [list(a) for a in self.attrs]]


@dataclass(frozen=True, slots=True)
class TxResult:
    code: int
    log: str = ""
    events: tuple[Event, ...] = ()

    @property
    def codespace(self) -> str:
        return "" if self.code == 0 else "perpchain"

    def to_wire(self) -> list:
        return [self.code, self.log, [e.to_wire() for e in self.events]]

    @staticmethod
    def from_wire(obj: list) -> "TxResult":
        code, log, events = obj
        return TxResult(code, log, tuple(Event(t, tuple((k, v) for k, v in a))
                                         for t, a in events))


@dataclass(frozen=True, slots=True)
class BlockInput:
    """What the state machine needs of a block (the consensus Block maps onto it)."""
    height: int
    time_ms: int
    txs: tuple[bytes, ...]


@dataclass(frozen=True)
class BlockResult:
    tx_results: tuple[TxResult, ...]
    writes: list[tuple[bytes, bytes | None]]
    app_hash: bytes

    def results_bytes(self) -> bytes:
        return encode([r.to_wire() for r in self.tx_results])


@dataclass(frozen=True, slots=True)
class Ctx:
    height: int
    time_ms: int
    chain_id: str


def put_last_block(view: Overlay, height: int, time_ms: int) -> None:
    view.put(K_LAST_BLOCK, encode([height, time_ms]))


def last_block(view: KVView) -> tuple[int, int]:
    """(height, time_ms) of the last applied block; (0, genesis time) after genesis."""
    raw = view.get(K_LAST_BLOCK)
    if raw is None:
        raise InvalidBlock("state has no genesis")
    h, t = load(raw)
    return h, t


def next_ctx(view: KVView, time_ms: int | None = None) -> Ctx:
    """Context for the block after the last one (the mempool checks txs against it)."""
    h, t = last_block(view)
    return Ctx(h + 1, t if time_ms is None else time_ms, params.chain_id(view))


def apply_block(view: KVView, block: BlockInput, prev_app_hash: bytes,
                known: Mapping[bytes, Tx] | None = None) -> BlockResult:
    """Apply `block` on top of `view`. `known` maps tx hash -> Tx already decoded and
    signature-checked by this node; other txs are decoded and verified here."""
    height, last_time = last_block(view)
    if block.height != height + 1:
        raise InvalidBlock(f"block height {block.height} does not follow {height}")
    if block.time_ms <= last_time:
        raise InvalidBlock(f"block time {block.time_ms} is not after {last_time}")
    if len(block.txs) > C.MAX_BLOCK_TXS:
        raise InvalidBlock(f"{len(block.txs)} txs exceeds {C.MAX_BLOCK_TXS}")
    if sum(len(t) for t in block.txs) > C.MAX_BLOCK_BYTES:
        raise InvalidBlock(f"block txs exceed {C.MAX_BLOCK_BYTES} bytes")
    ctx = Ctx(block.height, block.time_ms, params.chain_id(view))
    overlay = Overlay(view)
    known = known or {}
    results = []
    for raw in block.txs:
        tx = known.get(tx_hash(raw))
        results.append(apply_tx(overlay, ctx, raw, tx))
    put_last_block(overlay, block.height, block.time_ms)
    writes = overlay.sorted_writes()
    return BlockResult(tuple(results), writes, chain_app_hash(prev_app_hash, writes))


def apply_tx(overlay: Overlay, ctx: Ctx, raw: bytes, tx: Tx | None) -> TxResult:
    """Apply one tx into `overlay` (its writes are merged only if it is accepted).
    `tx` is the pre-verified Tx for `raw`, or None to decode and verify here."""
    try:
        if tx is None:
            tx = decode_tx(raw)
            check_chain_id(tx, ctx)
            verify_tx(tx)
        else:
            check_chain_id(tx, ctx)
        auth = overlay.child()
        accounts.use_nonce(auth, tx.signer, tx.nonce, ctx.time_ms)
        auth.commit()
    except TxError as e:
        return TxResult(int(e.code), e.log)
    act = overlay.child()
    try:
        events = HANDLERS[tx.type](act, ctx, tx)
    except TxError as e:
        return TxResult(int(e.code), e.log)
    act.commit()
    return TxResult(0, "", tuple(events))


def check_chain_id(tx: Tx, ctx: Ctx) -> None:
    if tx.chain_id != ctx.chain_id:
        raise TxError(Code.WRONG_CHAIN_ID,
                      f"tx is for chain {tx.chain_id!r}; this chain is {ctx.chain_id!r}")


def _hex(b: bytes) -> str:
    return b.hex()


def do_transfer(view: Overlay, ctx: Ctx, tx: Tx) -> list[Event]:
    _, to, asset, amount = tx.action
    decimals = params.asset_decimals(view, asset)
    if amount <= 0:
        raise TxError(Code.INVALID_AMOUNT, "transfer amount must be positive")
    accounts.move(view, tx.signer, to, asset, amount, decimals)
    return [Event("transfer", (("sender", _hex(tx.signer)), ("recipient", _hex(to)),
                               ("asset", asset), ("amount", format_amount(amount, decimals))))]


def do_faucet(view: Overlay, ctx: Ctx, tx: Tx) -> list[Event]:
    p = params.faucet(view)
    if p is None:
        raise TxError(Code.FAUCET_DISABLED, "this chain's genesis has no faucet")
    key = P_FAUCET_LAST + tx.signer
    raw = view.get(key)
    if raw is not None:
        next_ms = load(raw) + p.interval_ms
        if ctx.time_ms < next_ms:
            raise TxError(Code.FAUCET_RATE_LIMITED,
                          f"faucet already paid this account; next payout allowed at block "
                          f"time {next_ms} ms ({next_ms - ctx.time_ms} ms from now)")
    view.put(key, encode(ctx.time_ms))
    accounts.mint(view, tx.signer, p.asset, p.amount_quantums)
    decimals = params.asset_decimals(view, p.asset)
    return [Event("faucet", (("recipient", _hex(tx.signer)), ("asset", p.asset),
                             ("amount", format_amount(p.amount_quantums, decimals))))]


HANDLERS = {"transfer": do_transfer, "faucet": do_faucet}
