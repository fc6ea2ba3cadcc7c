"""The oracle: validators' signed price updates and the power-weighted median price per asset.

What this module owns
---------------------
    orc/v/<asset>\\x00<validator pub key>  -> [price, time_ms]   latest update of that validator
    orc/p/<asset>                          -> [price, time_ms]   the aggregated oracle price

* An `oracle` tx (action `["oracle", [[asset, price], ...]]`) must be signed by a validator
  (params.validators). Its prices are recorded with the block time; an asset may appear once.
* At the end of every block (`aggregate`), for each oracle asset, the updates no older than
  `max_age_ms` are fresh; if their voting power is at least `min_power_ppm` of the total, the
  oracle price becomes their power-weighted median (the lowest price at which the cumulative
  power, in ascending (price, key) order, reaches half of the fresh power) with the block time.
  Otherwise the old price is kept and ages.
* A price is **stale** when it is missing or older than `max_age_ms` at the block time: then
  risk-increasing orders on markets that use it are refused (ORACLE_STALE).

Prices are quote quantums per whole base unit (state.markets). Transactions always see the
prices aggregated at the end of the previous block: a block's own updates count from the next.
"""

from state import constants as C, params
from state.codec import encode, load
from state.errors import Code, TxError
from state.derived import load_memo
from state.kv import KVView, Overlay
from state.markets import is_oracle_asset, oracle_assets, oracle_params

P_UPDATE = b"orc/v/"
P_PRICE = b"orc/p/"


def _ukey(asset: str, validator: bytes) -> bytes:
    return P_UPDATE + asset.encode() + b"\x00" + validator


def _decode_price(raw: bytes) -> tuple[int, int]:
    return tuple(load(raw))


def price(view: KVView, asset: str) -> tuple[int, int] | None:
    """(price, time_ms) of the aggregated oracle price, or None if there never was one."""
    return load_memo(view, P_PRICE + asset.encode(), "oracle_px", _decode_price)


def put_price(view: Overlay, asset: str, px: int, time_ms: int) -> None:
    view.put(P_PRICE + asset.encode(), encode([px, time_ms]))


def fresh_price(view: KVView, asset: str, now_ms: int) -> int:
    """The oracle price if it is fresh at `now_ms`; TxError ORACLE_STALE otherwise."""
    p = price(view, asset)
    max_age = oracle_params(view).max_age_ms
    if p is None:
        raise TxError(Code.ORACLE_STALE, f"no oracle price for {asset} yet: risk-increasing "
                      "orders are halted until validators publish one")
    if now_ms - p[1] > max_age:
        raise TxError(Code.ORACLE_STALE, f"oracle price of {asset} is {now_ms - p[1]} ms old "
                      f"(limit {max_age} ms): risk-increasing orders are halted")
    return p[0]


def do_oracle(view: Overlay, ctx, tx) -> list:
    """Handle an `oracle` tx: record the signer's prices (it must be a validator)."""
    from state.events import Event

    signer = tx.signer
    if view.get(params.P_VALIDATOR + signer) is None:
        raise TxError(Code.NOT_A_VALIDATOR, f"{signer.hex()} is not a validator: only "
                      "validators publish oracle prices")
    seen: list[str] = []
    for asset, px in tx.action[1]:
        if not is_oracle_asset(view, asset):
            raise TxError(Code.UNKNOWN_ASSET, f"{asset!r} has no oracle; oracle assets: "
                          f"{', '.join(oracle_assets(view))}")
        if asset in seen:
            raise TxError(Code.INVALID_FIELD, f"oracle update lists {asset} twice")
        if not 0 < px <= C.MAX_PRICE:
            raise TxError(Code.INVALID_PRICE, f"oracle price {px} for {asset} outside "
                          f"1..{C.MAX_PRICE}")
        seen.append(asset)
        view.put(_ukey(asset, signer), encode([px, ctx.time_ms]))
    return [Event("oracle_update", (("validator", signer.hex()), ("assets", ",".join(seen))))]


def weighted_median(samples: list[tuple[int, bytes, int]]) -> int:
    """Lower power-weighted median of (price, key, power) samples (non-empty)."""
    samples = sorted(samples)
    total = sum(p for _, _, p in samples)
    acc = 0
    for px, _, power in samples:
        acc += power
        if 2 * acc >= total:
            return px
    raise AssertionError("unreachable: cumulative power reaches the total")


def aggregate(view: Overlay, now_ms: int) -> list[tuple[str, int]]:
    """End-of-block step: recompute each oracle asset's price from fresh updates.
    Returns (asset, price) of the assets whose price was refreshed."""
    op = oracle_params(view)
    vals = dict(params.validators(view))
    total = sum(vals.values())
    out = []
    for asset in oracle_assets(view):
        prefix = P_UPDATE + asset.encode() + b"\x00"
        samples = []
        for k, raw in view.iterate(prefix):
            key = k[len(prefix):]
            power = vals.get(key, 0)
            px, t = load(raw)
            if power and now_ms - t <= op.max_age_ms:
                samples.append((px, key, power))
        fresh_power = sum(p for _, _, p in samples)
        if samples and fresh_power * C.PPM >= op.min_power_ppm * total:
            px = weighted_median(samples)
            put_price(view, asset, px, now_ms)
            out.append((asset, px))
    return out
