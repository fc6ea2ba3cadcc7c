"""apply_block: the one entry point of the state machine.

    apply_block(view, block, prev_app_hash, known) -> BlockResult

checks the block header against the state, then runs, in this fixed order:
0. the block's double-sign evidence (checked by consensus) is recorded (state.evidence);
1. begin-block: interest accrual of each lending pool over the time since the last block
   (state.lending_accrual), then validator-set changes and other governance changes scheduled for this
   height, then expiry of good-til-time orders (expiry <= block time), so no expired order
   can trade in this block, then dated futures (state.futures: the settlement window's
   sample, and settlement of the futures whose expiry <= block time);
2. each tx in block order;
3. end-block: oracle aggregation (state.oracle), mark prices (state.mark), then the trigger
   orders whose condition the new mark meets, market by market in id order, each trigger in
   order-id order; then the TWAP slices that are due (state.twap); then funding
   (state.funding: premium samples, hourly payments); then liquidation of the accounts
   below maintenance margin (state.liquidation).
Then, if genesis turned the full-state digest on, it is updated from the write set and, every
N blocks, becomes the app hash (state.state_digest).
It returns per-tx results, the begin/end-block events, the validator changes this block
made (for consensus, effective at height + 2), the sorted write set and the new app hash. It
never writes to `view`: the node commits `writes` atomically with the block.

Derived in-memory state (order books, decoded markets: state.derived) lives on the block
overlay. With a `DerivedCache` the caller may carry it to the next block; it is used only if it
was produced by the block whose app hash the new block builds on.

The begin- and end-block steps report which kinds of record they wrote
(`BlockResult.steps_wrote`): the mempool keeps its check state across a block only when they
wrote nothing but prices (`PRICE_RECORDS`).

A tx is applied in two phases, each in its own overlay:
1. authentication: decode, chain id, signature, nonce. If this fails the tx leaves no
   trace. If it passes, the nonce is consumed even if phase 2 fails, so a rejected tx
   can never be replayed later.
2. the action, in a sub-transaction (state.scope): on TxError its writes and book changes are
   dropped and the code goes into the receipt.
Any other exception is a bug and propagates: the node halts rather than diverge.
"""

from dataclasses import dataclass
from typing import Mapping

from state import cancellation, constants as C, ledger, nonces, params, placement
from state.events import Event
from state.amounts import format_amount
from state import evidence, funding, futures, governance, liquidation, mark, oracle, triggers
from state import hl_actions, hl_grouping, isolated
from state import schedule_cancel, state_digest, twap
from state import lending_accrual, lending_actions
from state.evidence import DoubleSign
from state.derived import Derived, DerivedCache, derived_of
from state.margin import P_MARK
from state.markets import list_markets, oracle_params
from state.codec import encode, load
from state.errors import Code, InvalidBlock, TxError
from state.hashing import chain_app_hash
from state.kv import KVView, Overlay
from state.scope import Scope, SubTransaction
from state.tx import Tx, decode_tx, tx_hash, verify_tx

K_LAST_BLOCK = b"meta/last_block"   # [height, time_ms]
P_FAUCET_LAST = b"faucet/last/"     # + addr -> time_ms of the last faucet payout


@dataclass(slots=True)
class TxResult:
    """A tx's receipt (a slotted dataclass, not a named tuple: one per tx, and a named tuple's
    Python __new__ is slow to call)."""
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
    # The kinds of record (key prefixes up to the first "/") the begin/end-block steps wrote.
    steps_wrote: tuple[bytes, ...] = ()

    def steps_wrote_only_prices(self) -> bool:
        """Whether the block steps changed nothing but prices (PRICE_RECORDS): then a check
        state that holds the block's txs holds the block's effects but for prices."""
        return all(p in PRICE_RECORDS for p in self.steps_wrote)

    def results_bytes(self) -> bytes:
        """enc([result_0, ..., result_n-1]) and, only when the block has begin/end-block
        events, one more entry [0, "block", events] carrying them (CometBFT's
        finalize_block_events), so result i is still the i-th tx's."""
        out = [r.to_wire() for r in self.tx_results]
        if self.block_events:
            out.append(TxResult(0, BLOCK_EVENTS_LOG, self.block_events).to_wire())
        return encode(out)


BLOCK_EVENTS_LOG = "block"
# Records that move margins as the clock moves nonce windows: oracle updates and prices, marks,
# and the funding premium accumulator (it moves only a future rate, as prices do). A funding
# payment writes balances (`acct/`), which is not a price: that block forces a recheck.
PRICE_RECORDS = (oracle.P_PRICE.split(b"/")[0] + b"/", P_MARK, funding.P_PREMIUM,
                 futures.P_WINDOW)


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
                cache: DerivedCache | None = None) -> BlockResult:
    """Apply `block` on top of `view`. `known` maps tx hash -> Tx already decoded and
    signature-checked by this node; other txs are decoded and verified here. `cache`, if
    given, carries the derived state from the previous call (see the module docstring)."""
    height, last_time = last_block(view)
    check_header(block, height, last_time)
    ctx = Ctx(block.height, block.time_ms, params.chain_id(view))
    overlay = Overlay(view)
    overlay.derived = _take_derived(cache, prev_app_hash)
    known = known or {}
    hashes = block.tx_hashes
    if hashes is None or len(hashes) != len(block.txs):
        hashes = [tx_hash(raw) for raw in block.txs]
    steps_wrote: dict[bytes, None] = {}  # kinds of record, as an ordered set
    block_events = _step(overlay, steps_wrote, lambda v: evidence.record(v, block.height,
                                                                        block.evidence))
    block_events += _step(overlay, steps_wrote, lambda v: begin_block(v, ctx))
    results = []
    for raw, h in zip(block.txs, hashes):
        tx = known.get(h)
        if tx is not None and tx.raw != raw:
            tx = None
        results.append(apply_tx(overlay, ctx, raw, tx))
    block_events += _step(overlay, steps_wrote, lambda v: end_block(v, ctx))
    put_last_block(overlay, block.height, block.time_ms)
    writes = overlay.sorted_writes()
    app_hash = None
    if every := state_digest.interval(view):   # the full-state digest (state.state_digest)
        writes, app_hash = state_digest.seal(view, overlay, writes, block.height, every)
    if app_hash is None:
        app_hash = chain_app_hash(prev_app_hash, writes)
    if cache is not None:
        cache.derived = overlay.derived
        cache.app_hash = app_hash
    updates = governance.validator_updates(overlay, block.height + governance.VALSET_DELAY)
    return BlockResult(tuple(results), writes, app_hash, tuple(block_events), updates,
                       tuple(sorted(steps_wrote)))


def check_header(block: BlockInput, height: int, last_time: int) -> None:
    """What the state requires of the next block (InvalidBlock otherwise)."""
    if block.height != height + 1:
        raise InvalidBlock(f"block height {block.height} does not follow {height}")
    if block.time_ms <= last_time:
        raise InvalidBlock(f"block time {block.time_ms} is not after {last_time}")
    if len(block.txs) > C.MAX_BLOCK_TXS:
        raise InvalidBlock(f"{len(block.txs)} txs exceeds {C.MAX_BLOCK_TXS}")
    if sum(len(t) for t in block.txs) > C.MAX_BLOCK_BYTES:
        raise InvalidBlock(f"block txs exceed {C.MAX_BLOCK_BYTES} bytes")


def _take_derived(cache: DerivedCache | None, prev_app_hash: bytes) -> Derived:
    """The carried derived state if it equals the state the block builds on, else a new one."""
    if cache is None:
        return Derived()
    d = cache.derived if cache.holds(prev_app_hash) else None
    if d is None:
        cache.derived.release()  # built on another state: dropped
        d = Derived()
    cache.app_hash = None  # a block that fails half-way must leave no valid-looking cache
    return d


def _step(overlay: Overlay, wrote: dict, step) -> list[Event]:
    """Run a begin/end-block step in its own overlay; note the kinds of record it wrote."""
    child = overlay.child()
    events = step(child)
    for key in child.writes:
        wrote[key[:key.index(b"/") + 1]] = None
    child.commit()
    return events


def apply_tx(overlay: Overlay, ctx: Ctx, raw: bytes, tx: Tx | None) -> TxResult:
    """Apply one tx into `overlay` (its writes are merged only if it is accepted).
    `tx` is the pre-verified Tx for `raw`, or None to decode and verify here.
    The caller must keep `overlay`'s writes when this returns code 0 (the derived books
    already include the tx) and may drop them otherwise (the books were rolled back)."""
    try:
        if tx is None:
            tx = decode_tx(raw)
            check_chain_id(tx, ctx)
            verify_tx(tx)
        else:
            check_chain_id(tx, ctx)
        # It writes only once every check has passed, so a rejected nonce leaves no trace.
        nonces.use_nonce(overlay, tx.signer, tx.nonce, ctx.time_ms)
        with SubTransaction(overlay, ctx) as scope:
            HANDLERS[tx.type](scope, tx)
    except TxError as e:
        return TxResult(int(e.code), e.log)
    return TxResult(0, "", tuple(scope.events))


def check_chain_id(tx: Tx, ctx: Ctx) -> None:
    if tx.chain_id != ctx.chain_id:
        if tx.chain_id is None:   # a Hyperliquid envelope (state.tx.HlTx): its own rules
            hl_actions.check_envelope(tx, ctx)
            return
        raise TxError(Code.WRONG_CHAIN_ID,
                      f"tx is for chain {tx.chain_id!r}; this chain is {ctx.chain_id!r}")


def do_transfer(scope: Scope, tx: Tx) -> None:
    _, to, asset, amount = tx.action
    view = scope.view
    decimals = params.asset_decimals(view, asset)
    if amount <= 0:
        raise TxError(Code.INVALID_AMOUNT, "transfer amount must be positive")
    ledger.move(view, tx.signer, to, asset, amount, decimals)
    placement.check_after_withdrawal(scope, tx.signer)
    scope.events.append(Event("transfer", (
        ("sender", tx.signer.hex()), ("recipient", to.hex()), ("asset", asset),
        ("amount", format_amount(amount, decimals)))))


def do_faucet(scope: Scope, tx: Tx) -> None:
    view, now = scope.view, scope.ctx.time_ms
    p = params.faucet(view)
    if p is None:
        raise TxError(Code.FAUCET_DISABLED, "this chain's genesis has no faucet")
    key = P_FAUCET_LAST + tx.signer
    raw = view.get(key)
    if raw is not None:
        next_ms = load(raw) + p.interval_ms
        if now < next_ms:
            raise TxError(Code.FAUCET_RATE_LIMITED,
                          f"faucet already paid this account; next payout allowed at block "
                          f"time {next_ms} ms ({next_ms - now} ms from now)")
    view.put(key, encode(now))
    ledger.mint(view, tx.signer, p.asset, p.amount_quantums)
    decimals = params.asset_decimals(view, p.asset)
    scope.events.append(Event("faucet", (
        ("recipient", tx.signer.hex()), ("asset", p.asset),
        ("amount", format_amount(p.amount_quantums, decimals)))))


def _view_handler(fn):
    """Adapt a handler of (view, ctx, tx) -> events (oracle, governance) to (scope, tx)."""
    def handler(scope: Scope, tx: Tx) -> None:
        scope.events.extend(fn(scope.view, scope.ctx, tx))
    handler.__name__ = fn.__name__
    return handler


def _action_handler(fn):
    """Adapt a trading action (scope, signer, fields) to (scope, tx)."""
    def handler(scope: Scope, tx: Tx) -> None:
        fn(scope, tx.signer, tx.action[1:])
    handler.__name__ = f"do_{fn.__name__}"
    return handler


def do_batch(scope: Scope, tx: Tx) -> None:
    """Each action of a batch runs as its own sub-transaction: a rejected one leaves no trace
    and gets a `batch_item` event with its code; the others apply. The tx itself succeeds."""
    for i, sub in enumerate(tx.action[1]):
        try:
            with SubTransaction(scope.view, scope.ctx) as item:
                BATCH_ACTIONS[sub[0]](item, tx.signer, sub[1:])
        except TxError as e:
            scope.events.append(_batch_item(i, sub[0], int(e.code), e.log))
            continue
        scope.events.append(_batch_item(i, sub[0], 0, ""))
        scope.events.extend(item.events)


def _batch_item(i: int, action: str, code: int, log: str) -> Event:
    return Event("batch_item", (("index", str(i)), ("action", action), ("code", str(code)),
                                ("log", log)))


def begin_block(view: Overlay, ctx: Ctx) -> list[Event]:
    # (first: the interval before this block accrues at the parameters it had)
    events = lending_accrual.begin_block(view, ctx, last_block(view)[1])
    events += governance.apply_validator_updates(view, ctx.height)
    events += governance.apply_pending(view, ctx)
    events += triggers.expire_orders(view, ctx)
    events += schedule_cancel.begin_block(view, ctx)
    events += futures.begin_block(view, ctx, last_block(view)[1])
    return events


def end_block(view: Overlay, ctx: Ctx) -> list[Event]:
    """Hyperliquid tp/sl whose parent left the book, oracle aggregation, then per perp or
    unexpired future market (ascending id) its mark and its triggers, then TWAP slices, then
    funding, then liquidation."""
    events: list[Event] = hl_grouping.end_block(view, ctx)
    for asset, px in oracle.aggregate(view, ctx.time_ms):
        events.append(Event("oracle_price", (("asset", asset), ("price", str(px)))))
    tau = oracle_params(view).mark_ema_ms
    books = derived_of(view).books
    for m in list_markets(view):
        if not m.perp_like or futures.expired(m, ctx.time_ms):
            continue
        p = oracle.price(view, m.base)
        if p is None:
            continue
        mk = mark.update_mark(view, m, books.book(view, m.id), p[0], ctx.time_ms, tau)
        events += triggers.fire_triggers(view, ctx, m, mk)
    events += twap.run_slices(view, ctx)
    events += funding.end_block(view, ctx)
    events += liquidation.liquidate(view, ctx)
    return events


BATCH_ACTIONS = {"order": placement.place, "cancel": cancellation.cancel,
                 "cancel_cloid": cancellation.cancel_cloid,
                 "cancel_all": cancellation.cancel_all, "modify": placement.modify}

HANDLERS = {"transfer": do_transfer, "faucet": do_faucet, "batch": do_batch,
            "oracle": _view_handler(oracle.do_oracle),
            "gov_add_market": _view_handler(governance.do_add_market),
            "gov_set_param": _view_handler(governance.do_set_param),
            "gov_set_validator": _view_handler(governance.do_set_validator),
            "set_leverage": _action_handler(placement.set_leverage),
            "set_margin_mode": _action_handler(isolated.set_margin_mode),
            "isolated_margin": _action_handler(isolated.update_isolated_margin),
            "modify_trigger": _action_handler(triggers.modify_trigger),
            "schedule_cancel": _action_handler(schedule_cancel.schedule),
            "twap_order": _action_handler(twap.place_twap),
            "twap_cancel": _action_handler(twap.cancel_twap),
            **{name: _action_handler(getattr(lending_actions, name))
               for name in ("withdraw", "deposit", "set_lending", "settle_pnl")},
            "hl": hl_actions.run,
            **{name: _action_handler(fn) for name, fn in BATCH_ACTIONS.items()}}
