"""apply_block: the one entry point of the state machine (DESIGN.md §5.1).

    apply_block(view, block, prev_app_hash, known) -> BlockResult

checks the block header against the state, then runs, in this fixed order:
0. the block's double-sign evidence (checked by consensus) is recorded (state.evidence);
1. begin-block: validator-set changes and other governance changes scheduled for this
   height, then expiry of good-til-time orders (expiry <= block time), so no expired order
   can trade in this block;
2. each tx in block order;
3. end-block: oracle aggregation (state.oracle), mark prices (state.mark), then the trigger
   orders whose condition the new mark meets, market by market in id order, each trigger in
   order-id order. (Funding, interest and liquidation come with later issues.)
It returns per-tx results, the begin/end-block events, the validator changes this block
made (for consensus, effective at height + 2), the sorted write set and the new app hash. It never writes to `view`: the node commits `writes` atomically with the block.

Derived in-memory state (order books, decoded markets) lives on the block overlay's root cache
(state.kv.root_cache). With a `BookCache` the caller may carry it to the next block; it is used
only if it was produced by the block whose app hash the new block builds on.

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
from state.events import Event
from state.amounts import format_amount
from state import evidence, governance, mark, oracle, orders, trading
from state.evidence import DoubleSign
from state.books import BookCache, Books, books_of, release_cache
from state.markets import PERP, get as get_market, list_markets, oracle_params
from state.codec import encode, load
from state.errors import Code, InvalidBlock, TxError
from state.hashing import chain_app_hash
from state.kv import KVView, Overlay
from state.tx import Tx, decode_tx, tx_hash, verify_tx

K_LAST_BLOCK = b"meta/last_block"   # [height, time_ms]
P_FAUCET_LAST = b"faucet/last/"     # + addr -> time_ms of the last faucet payout


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


_new = object.__new__
_set_code = TxResult.__dict__["code"].__set__
_set_log = TxResult.__dict__["log"].__set__
_set_events = TxResult.__dict__["events"].__set__


def _accepted(events: tuple[Event, ...]) -> TxResult:
    """`TxResult(0, "", events)` without the frozen dataclass's `__init__` (as
    `state.events.event`): one per accepted tx."""
    r = _new(TxResult)
    _set_code(r, 0)
    _set_log(r, "")
    _set_events(r, events)
    return r


@dataclass(frozen=True, slots=True)
class BlockInput:
    """What the state machine needs of a block (the consensus Block maps onto it)."""
    height: int
    time_ms: int
    txs: tuple[bytes, ...]
    evidence: tuple[DoubleSign, ...] = ()   # checked by consensus; recorded here
    # sha256 of each tx, if the caller has computed them (consensus does, to check the
    # header's data hash). They only find txs in `known`, whose bytes must then equal the
    # block's, so a wrong hash costs a decode and a verify, never a wrong tx.
    tx_hashes: tuple[bytes, ...] | None = None


@dataclass(frozen=True)
class BlockResult:
    tx_results: tuple[TxResult, ...]
    writes: list[tuple[bytes, bytes | None]]
    app_hash: bytes
    block_events: tuple[Event, ...] = ()   # begin-block and end-block events, in order
    # Validator power changes made by this block; consensus applies them at height + 2.
    validator_updates: tuple[tuple[bytes, int], ...] = ()

    def results_bytes(self) -> bytes:
        """enc([result_0, ..., result_n-1]) and, only when the block has begin/end-block
        events, one more entry [0, "block", events] carrying them (CometBFT's
        finalize_block_events), so result i is still the i-th tx's."""
        out = [r.to_wire() for r in self.tx_results]
        if self.block_events:
            out.append(TxResult(0, BLOCK_EVENTS_LOG, self.block_events).to_wire())
        return encode(out)


BLOCK_EVENTS_LOG = "block"


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
                known: Mapping[bytes, Tx] | None = None,
                cache: BookCache | None = None) -> BlockResult:
    """Apply `block` on top of `view`. `known` maps tx hash -> Tx already decoded and
    signature-checked by this node; other txs are decoded and verified here. `cache`, if
    given, carries the order books from the previous call (see the module docstring)."""
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
    if cache is not None:
        valid = cache.app_hash is not None and cache.app_hash == prev_app_hash
        if not valid:
            release_cache(cache.data)  # built on another state: dropped
        overlay.cache = cache.data if valid else {}
        cache.app_hash = None  # a block that fails half-way must leave no valid-looking cache
    known = known or {}
    block_events = evidence.record(overlay, block.height, block.evidence)
    block_events += begin_block(overlay, ctx)
    results = []
    hashes = block.tx_hashes
    if hashes is None or len(hashes) != len(block.txs):
        hashes = [tx_hash(raw) for raw in block.txs]
    books = books_of(overlay)
    for raw, h in zip(block.txs, hashes):
        tx = known.get(h)
        if tx is not None and tx.raw != raw:
            tx = None
        results.append(apply_tx(overlay, ctx, raw, tx, books))
    block_events += end_block(overlay, ctx)
    put_last_block(overlay, block.height, block.time_ms)
    writes = overlay.sorted_writes()
    app_hash = chain_app_hash(prev_app_hash, writes)
    if cache is not None:
        cache.data = overlay.cache if overlay.cache is not None else {}
        cache.app_hash = app_hash
    return BlockResult(tuple(results), writes, app_hash, tuple(block_events),
                       governance.validator_updates(overlay, block.height + governance.VALSET_DELAY))


def apply_tx(overlay: Overlay, ctx: Ctx, raw: bytes, tx: Tx | None,
             books: Books | None = None) -> TxResult:
    """Apply one tx into `overlay` (its writes are merged only if it is accepted).
    `tx` is the pre-verified Tx for `raw`, or None to decode and verify here; `books`:
    `books_of(overlay)`, if the caller has it.
    The caller must keep `overlay`'s writes when this returns code 0 (the root cache's books
    already include the tx) and may drop them otherwise (the books were rolled back)."""
    try:
        if tx is None:
            tx = decode_tx(raw)
            check_chain_id(tx, ctx)
            verify_tx(tx)
        else:
            check_chain_id(tx, ctx)
        # It writes only once every check has passed, so a rejected nonce leaves no trace.
        accounts.use_nonce(overlay, tx.signer, tx.nonce, ctx.time_ms)
    except TxError as e:
        return TxResult(int(e.code), e.log)
    act = overlay.child()
    if books is None:
        books = books_of(overlay)
    books.begin()
    try:
        events = HANDLERS[tx.type](act, ctx, tx)
    except TxError as e:
        books.rollback()
        return TxResult(int(e.code), e.log)
    books.commit()
    act.commit()
    return _accepted(tuple(events))


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


def _trading_handler(fn):
    """Adapt a state.trading action (ex, signer, fields) to the HANDLERS signature."""
    def handler(view: Overlay, ctx: Ctx, tx: Tx) -> list[Event]:
        ex = trading.Exec(view, ctx)
        fn(ex, tx.signer, tx.action[1:])
        return ex.events
    handler.__name__ = f"do_{fn.__name__}"
    return handler


def do_batch(view: Overlay, ctx: Ctx, tx: Tx) -> list[Event]:
    """Each action of a batch runs as its own sub-transaction: a rejected one leaves no trace
    and gets a `batch_item` event with its code; the others apply. The tx itself succeeds."""
    events: list[Event] = []
    books = books_of(view)
    for i, sub in enumerate(tx.action[1]):
        child = view.child()
        books.begin()
        ex = trading.Exec(child, ctx)
        try:
            trading.HANDLERS[sub[0]](ex, tx.signer, sub[1:])
        except TxError as e:
            books.rollback()
            events.append(Event("batch_item", (("index", str(i)), ("action", sub[0]),
                                               ("code", str(int(e.code))), ("log", e.log))))
            continue
        books.commit()
        child.commit()
        events.append(Event("batch_item", (("index", str(i)), ("action", sub[0]),
                                           ("code", "0"), ("log", ""))))
        events.extend(ex.events)
    return events


def sub_transaction(view: Overlay, ctx: Ctx, fn, *args) -> tuple[list[Event], TxError | None]:
    """Run `fn(ex, *args)` in its own overlay and book journal (begin/end-block steps):
    kept on success, rolled back on TxError. Returns (events, error)."""
    books = books_of(view)
    child = view.child()
    books.begin()
    ex = trading.Exec(child, ctx)
    try:
        fn(ex, *args)
    except TxError as e:
        books.rollback()
        # Without its traceback: the frames it holds (overlays, the Exec) are then freed at
        # once by reference counting, not by the cycle collector (node/gc_tuning.py).
        return [], e.with_traceback(None)
    books.commit()
    child.commit()
    return ex.events, None


def begin_block(view: Overlay, ctx: Ctx) -> list[Event]:
    events = governance.apply_validator_updates(view, ctx.height)
    events += governance.apply_pending(view, ctx.height)
    for market_id, order_id in orders.expired(view, ctx.time_ms, C.MAX_EXPIRIES_PER_BLOCK):
        m = get_market(view, market_id)

        def expire(ex, m=m, order_id=order_id):
            trading.cancel_open(ex, m, None, order_id, "expired")
            ex.flush()
        evs, err = sub_transaction(view, ctx, expire)
        if err is not None:  # pragma: no cover - an index without its order is a bug
            raise AssertionError(f"expiry of order {order_id}: {err}")
        events.extend(evs)
    return events


def end_block(view: Overlay, ctx: Ctx) -> list[Event]:
    events: list[Event] = []
    for asset, px in oracle.aggregate(view, ctx.time_ms):
        events.append(Event("oracle_price", (("asset", asset), ("price", str(px)))))
    tau = oracle_params(view).mark_ema_ms
    books = books_of(view)
    for m in list_markets(view):
        if m.kind != PERP:
            continue
        p = oracle.price(view, m.base)
        if p is None:
            continue
        mk = mark.update_mark(view, m, books.book(view, m.id), p[0], ctx.time_ms, tau)
        fired = orders.fired_triggers(view, m.id, mk // m.tick_size, -(-mk // m.tick_size),
                                      C.MAX_TRIGGERS_PER_MARKET_PER_BLOCK)
        for order_id in fired:
            o = orders.get_trigger(view, m.id, order_id)
            evs, err = sub_transaction(view, ctx, trading.fire_trigger, m, o, mk)
            if err is not None:
                # The order still leaves: a trigger fires once, as Hyperliquid's.
                def drop(ex, m=m, o=o):
                    trading._remove_trigger(ex, m, o, None)
                    ex.flush()
                evs, _ = sub_transaction(view, ctx, drop)
                evs.append(Event("trigger_rejected", (("order_id", str(order_id)),
                                                      ("market", m.symbol),
                                                      ("owner", o.owner.hex()),
                                                      ("code", str(int(err.code))),
                                                      ("log", err.log))))
            events.extend(evs)
    return events


HANDLERS = {"transfer": do_transfer, "faucet": do_faucet, "batch": do_batch,
            "oracle": oracle.do_oracle, "gov_add_market": governance.do_add_market,
            "gov_set_param": governance.do_set_param,
            "gov_set_validator": governance.do_set_validator,
            "set_leverage": _trading_handler(trading.set_leverage),
            **{name: _trading_handler(fn) for name, fn in trading.HANDLERS.items()}}
