"""The mempool: pending txs, checked before they reach a block.

A tx is admitted only if it passes, in order: size and shape (`precheck`), not already
pending or committed, room in the pool (count and bytes), signature (checked once, by the
caller in worker threads; the Tx object then travels with the tx into block execution),
and CheckTx: the tx applied to a check state = last committed state + every pending tx
before it, so a second transfer that would overdraw, or a reused nonce, is refused here
with the same code the block would give it. Every time rule (nonce window, order expiry,
faucet interval, oracle freshness) is judged at the last committed block's time, never at
the node's clock, so CheckTx is a pure function of committed state. After each block,
included txs leave and the rest are re-checked against the new state (as CometBFT's
recheck), dropping those that no longer pass. Proposal order is arrival order.

Recheck is skipped when it cannot change anything: when the block was exactly the oldest
pending txs, in mempool order, and each of them succeeded, the check state already equals
the new committed state plus the remaining txs, so its writes are kept over the new base.
(Time-dependent checks, e.g. the faucet interval, may then be slightly more permissive
than a full recheck; block execution stays the authority and records any rejection.)
"""

from dataclasses import dataclass

from state.errors import Code, TxError
from state.books import Books
from state.derived import Derived, DerivedCache
from state.kv import KVView, Overlay
from state.machine import BlockResult, Ctx, TxResult, apply_tx, check_chain_id
from state.tx import Tx, decode_tx, tx_hash


# Codes decided by comparing with the block time. CheckTx runs at the last committed block's
# time (`ctx`, from `next_ctx`), not at the node's clock (docs/PROTOCOL.md section 6); their
# logs say so, since the state machine's words "block time" would name the wrong block.
TIME_JUDGED = frozenset({Code.NONCE_OUT_OF_WINDOW, Code.FAUCET_RATE_LIMITED, Code.ORACLE_STALE,
                         Code.ORDER_EXPIRED, Code.ACTION_EXPIRED})


@dataclass
class MempoolLimits:
    max_txs: int
    max_bytes: int
    max_tx_bytes: int


class Mempool:
    def __init__(self, limits: MempoolLimits, view: KVView, ctx: Ctx, committed):
        """`committed(tx_hash)` says whether a committed block holds the tx (node/store.py
        `Store.tx_committed`: the on-disk tx index, so no hashes are kept here)."""
        self.limits = limits
        self.txs: dict[bytes, Tx] = {}
        self.bytes = 0
        self._committed = committed
        self._reset_check_state(view, ctx)

    def _reset_check_state(self, view: KVView, ctx: Ctx, cache: DerivedCache | None = None,
                           kept: dict | None = None) -> None:
        """A new check state over `view`; its books are copies of `cache`'s (which holds
        `view`'s state) brought up to date with the `kept` writes it will hold, if given."""
        self.ctx = ctx
        old = getattr(self, "check_state", None)
        if old is not None and old.derived is not None:
            old.derived.release()  # its order books, freed now rather than by the collector
        self.check_state = Overlay(view)
        if cache is not None:
            mine = Books()
            mine.copy_from(cache, kept)
            self.check_state.derived = Derived(mine)

    def __len__(self) -> int:
        return len(self.txs)

    def precheck(self, raw: bytes) -> Tx:
        """Stateless checks (and duplicates / room). Raises TxError with the reason."""
        if len(raw) > self.limits.max_tx_bytes:
            raise TxError(Code.TX_TOO_LARGE, f"tx is {len(raw)} bytes; the limit is "
                          f"{self.limits.max_tx_bytes}")
        h = tx_hash(raw)
        if h in self.txs:
            raise TxError(Code.TX_IN_MEMPOOL, "tx is already in the mempool")
        if self._committed(h):
            raise TxError(Code.TX_ALREADY_COMMITTED, "tx is already in a committed block")
        tx = decode_tx(raw)
        check_chain_id(tx, self.ctx)
        self._check_room(len(raw))
        return tx

    def _check_room(self, size: int) -> None:
        if len(self.txs) >= self.limits.max_txs or self.bytes + size > self.limits.max_bytes:
            raise TxError(Code.MEMPOOL_FULL, f"mempool is full ({len(self.txs)} txs, "
                          f"{self.bytes} bytes); retry later")

    def admit(self, tx: Tx) -> TxResult:
        """CheckTx for a tx whose signature the caller verified. Code 0 = pending."""
        if tx.hash in self.txs:
            return TxResult(int(Code.TX_IN_MEMPOOL), "tx is already in the mempool")
        try:
            self._check_room(len(tx.raw))
        except TxError as e:
            return TxResult(int(e.code), e.log)
        result = self._check(tx)
        if result.code == 0:
            self.txs[tx.hash] = tx
            self.bytes += len(tx.raw)
        return result

    def _check(self, tx: Tx) -> TxResult:
        trial = self.check_state.child()
        result = apply_tx(trial, self.ctx, tx.raw, tx)
        if result.code == 0:
            trial.commit()
        elif result.code in TIME_JUDGED:
            return TxResult(result.code, f"{result.log} [checked at the last committed "
                            f"block's time, {self.ctx.time_ms} ms (height "
                            f"{self.ctx.height - 1}); the block that includes the tx judges "
                            "it at its own, later time]")
        return result

    def reap(self, max_txs: int, max_bytes: int) -> list[Tx]:
        """The oldest pending txs that fit in a block (they stay until `update`)."""
        out, size = [], 0
        for tx in self.txs.values():
            if len(out) >= max_txs or size + len(tx.raw) > max_bytes:
                break
            out.append(tx)
            size += len(tx.raw)
        return out

    def get(self, h: bytes) -> Tx | None:
        return self.txs.get(h)

    def update(self, committed_hashes, view: KVView, ctx: Ctx, recheck: bool = True,
               result: BlockResult | None = None,
               cache: DerivedCache | None = None) -> list[Tx]:
        """After a block: drop its txs, re-check the rest. Returns the txs evicted by recheck.
        `result`: the block's execution result, if this node executed it; `cache`: the
        node's execution derived cache, holding `view`'s state: the check state copies its
        books on first use instead of building them from the store (`Books.copy_from`).

        Fast path: when the block is this mempool's own prefix, every tx succeeded and the
        begin/end-block steps wrote nothing but prices (`BlockResult.steps_wrote_only_prices`),
        the check state already holds the block's effects, so it is kept as it is (the
        remaining txs are not rechecked). Any other block step (a trigger firing, an order
        expiring, a governance change taking effect, ...) may have changed orders or accounts
        the check state holds, so the mempool rechecks from the committed state."""
        is_prefix = result is not None and all(r.code == 0 for r in result.tx_results) and \
            result.steps_wrote_only_prices() and len(committed_hashes) <= len(self.txs) and \
            all(a == b for a, b in zip(committed_hashes, self.txs))
        for h in committed_hashes:
            tx = self.txs.pop(h, None)
            if tx is not None:
                self.bytes -= len(tx.raw)
        if is_prefix:
            kept = self.check_state.writes
            self._reset_check_state(view, ctx, cache, kept)
            self.check_state.writes = kept
            return []
        self._reset_check_state(view, ctx, cache)
        if not recheck:
            return []
        evicted = []
        for h, tx in list(self.txs.items()):
            if self._check(tx).code != 0:
                del self.txs[h]
                self.bytes -= len(tx.raw)
                evicted.append(tx)
        return evicted
