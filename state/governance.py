"""Governance: the genesis authority adds markets and changes parameters from a stated height.

What this module owns
---------------------
    gov/at/<height:8><n:4> -> [action, payload]   changes scheduled for the start of `height`

* `gov_add_market [spec, effective_height]` lists a new market (state.markets spec) with the next
  free id; `gov_set_param [market, param, value, effective_height]` changes one market parameter
  (market > 0: SET_MARKET_PARAMS) or an exchange parameter (market 0: SET_GLOBAL_PARAMS, or a
  lending pool's `L.<symbol>.<field>`: state.lending_gov).
* Only the governance authority of genesis may sign them (NOT_GOVERNANCE). The height must be
  after the current block and at most MAX_GOVERNANCE_DELAY_BLOCKS ahead, and the change must be
  valid against today's state (INVALID_GOVERNANCE); it is validated again when it takes effect
  at the start of its height (begin-block), and a change that became invalid meanwhile is
  dropped with a `governance_failed` event instead of halting the chain.
"""

from state import constants as C, params
from state.codec import encode, load
from state.errors import Code, TxError
from state import lending_gov
from state.futures import check_listing
from state.kv import KVView, Overlay
from state.markets import (Market, OracleParams, check_fees_fit, fee_params,
                           get as get_market, gov_authority, market_from_spec, next_market_id,
                           oracle_params, put_market, put_oracle_asset, put_oracle_params)

P_PENDING = b"gov/at/"
SET_MARKET_PARAMS = ("maker_fee_ppm", "taker_fee_ppm", "min_size", "impact_notional")
SET_GLOBAL_PARAMS = ("oracle_max_age", "oracle_min_power", "mark_ema_ms")


def _asset_decimals(view: KVView) -> dict[str, int]:
    return {s: params.asset_decimals(view, s) for s in params.list_assets(view)}


def _quote_decimals(view: KVView) -> int:
    return params.asset_decimals(view, params.quote_asset(view))


def _new_market(view: KVView, spec: list, now_ms: int) -> Market:
    try:
        m = market_from_spec(next_market_id(view), spec, _quote_decimals(view),
                             _asset_decimals(view))
        check_fees_fit(m, fee_params(view))
        check_listing(m, now_ms)  # a future must expire after the block that lists it
    except ValueError as e:
        raise TxError(Code.INVALID_GOVERNANCE, f"market spec: {e}") from None
    return m


def _changed_market(view: KVView, market_id: int, param: str, value: int) -> Market:
    m = get_market(view, market_id)
    if param not in SET_MARKET_PARAMS:
        raise TxError(Code.INVALID_GOVERNANCE, f"market parameter {param!r} cannot be changed; "
                      f"changeable: {', '.join(SET_MARKET_PARAMS)}")
    spec = m.spec()
    from state.markets import SPEC_FIELDS
    spec[SPEC_FIELDS.index(param)] = value
    try:
        new = market_from_spec(m.id, spec, _quote_decimals(view), _asset_decimals(view))
        check_fees_fit(new, fee_params(view))
    except ValueError as e:
        raise TxError(Code.INVALID_GOVERNANCE, f"{param} = {value}: {e}") from None
    return new


def _changed_oracle(view: KVView, param: str, value: int) -> OracleParams:
    p = oracle_params(view)
    if param == "oracle_max_age" and value > 0:
        return OracleParams(value, p.min_power_ppm, p.mark_ema_ms)
    if param == "oracle_min_power" and 0 < value <= C.PPM:
        return OracleParams(p.max_age_ms, value, p.mark_ema_ms)
    if param == "mark_ema_ms" and value > 0:
        return OracleParams(p.max_age_ms, p.min_power_ppm, value)
    raise TxError(Code.INVALID_GOVERNANCE, f"exchange parameter {param!r} = {value} is not "
                  f"valid; changeable: {', '.join(SET_GLOBAL_PARAMS)} (positive; "
                  f"oracle_min_power at most {C.PPM} ppm)")


def _check_signer_and_height(view: KVView, ctx, tx, height: int) -> None:
    auth = gov_authority(view)
    if auth is None or tx.signer != auth:
        raise TxError(Code.NOT_GOVERNANCE, "only the governance authority of genesis may "
                      "sign governance actions" + (f" ({auth.hex()})" if auth else
                                                   " (this chain has none)"))
    if not ctx.height < height <= ctx.height + C.MAX_GOVERNANCE_DELAY_BLOCKS:
        raise TxError(Code.INVALID_GOVERNANCE, f"effective height {height} must be in "
                      f"{ctx.height + 1}..{ctx.height + C.MAX_GOVERNANCE_DELAY_BLOCKS}")


def _schedule(view: Overlay, height: int, item: list) -> int:
    prefix = P_PENDING + height.to_bytes(8, "big")
    n = sum(1 for _ in view.iterate(prefix))
    view.put(prefix + n.to_bytes(4, "big"), encode(item))
    return n


def do_add_market(view: Overlay, ctx, tx) -> list:
    from state.events import Event

    _, spec, height = tx.action
    _check_signer_and_height(view, ctx, tx, height)
    m = _new_market(view, spec, ctx.time_ms)
    _schedule(view, height, ["add_market", spec])
    return [Event("governance_scheduled", (("action", "add_market"), ("symbol", m.symbol),
                                           ("effective_height", str(height))))]


def do_set_param(view: Overlay, ctx, tx) -> list:
    from state.events import Event

    _, market_id, param, value, height = tx.action
    _check_signer_and_height(view, ctx, tx, height)
    if market_id:
        _changed_market(view, market_id, param, value)
    elif lending_gov.is_lending_param(param):
        lending_gov.check(view, param, value)
    else:
        _changed_oracle(view, param, value)
    _schedule(view, height, ["set_param", [market_id, param, value]])
    return [Event("governance_scheduled", (("action", "set_param"), ("market", str(market_id)),
                                           ("param", param), ("value", str(value)),
                                           ("effective_height", str(height))))]


def apply_pending(view: Overlay, ctx) -> list:
    """Begin-block: apply the changes scheduled for this height, in the order they were made,
    each in its own sub-transaction (a change that became invalid fails alone)."""
    from state.events import Event
    from state.scope import SubTransaction

    events = []
    prefix = P_PENDING + ctx.height.to_bytes(8, "big")
    for k, raw in list(view.iterate(prefix)):
        kind, payload = load(raw)
        view.delete(k)
        try:
            with SubTransaction(view, ctx) as scope:
                events.append(_apply_change(scope.view, kind, payload, ctx.time_ms))
        except TxError as e:
            events.append(Event("governance_failed", (("action", kind), ("code", str(int(e.code))),
                                                      ("log", e.log))))
    return events


def _apply_change(view: Overlay, kind: str, payload: list, now_ms: int):
    from state.events import Event

    if kind == "add_market":
        m = _new_market(view, payload, now_ms)
        put_market(view, m)
        if m.perp_like:
            put_oracle_asset(view, m.base)
        return Event("governance_applied", (("action", kind), ("market_id", str(m.id)),
                                            ("symbol", m.symbol)))
    market_id, param, value = payload
    if market_id:
        put_market(view, _changed_market(view, market_id, param, value))
    elif lending_gov.is_lending_param(param):
        lending_gov.apply(view, param, value)
    else:
        put_oracle_params(view, _changed_oracle(view, param, value))
    return Event("governance_applied", (("action", kind), ("market", str(market_id)),
                                        ("param", param), ("value", str(value))))


# -- validator set changes ---------------------------------------------------------------------
#   gov/valset/<effective height:8><pub_key:32> -> power (0 removes)
# A change signed in block h takes effect at h + 2, as in CometBFT: block h's result carries
# it to consensus (BlockResult.validator_updates), which uses the new set from h + 2 on; the
# state applies it to its own copy (params.validators, which weights the oracle) at the start
# of h + 2, so both agree from that height.
P_VALSET = b"gov/valset/"
VALSET_DELAY = 2


def _prospective_validators(view: KVView) -> dict[bytes, int]:
    """The validator set once every scheduled change has taken effect."""
    vals = dict(params.validators(view))
    n = len(P_VALSET) + 8
    for k, raw in view.iterate(P_VALSET):
        power = load(raw)
        if power:
            vals[k[n:]] = power
        else:
            vals.pop(k[n:], None)
    return vals


def do_set_validator(view: Overlay, ctx, tx) -> list:
    """`gov_set_validator [pub_key, power]`: add, re-weight (power > 0) or remove (0)."""
    from state.events import Event

    _, pub_key, power = tx.action
    _check_signer_and_height(view, ctx, tx, ctx.height + VALSET_DELAY)
    vals = _prospective_validators(view)
    if power == 0 and pub_key not in vals:
        raise TxError(Code.INVALID_GOVERNANCE, f"{pub_key.hex()} is not a validator: "
                      "nothing to remove")
    if power > C.MAX_VALIDATOR_POWER:
        raise TxError(Code.INVALID_GOVERNANCE, f"power {power} exceeds {C.MAX_VALIDATOR_POWER}")
    if power:
        vals[pub_key] = power
    else:
        del vals[pub_key]
    if not vals:
        raise TxError(Code.INVALID_GOVERNANCE, "the last validator cannot be removed")
    if len(vals) > C.MAX_VALIDATORS:
        raise TxError(Code.INVALID_GOVERNANCE, f"more than {C.MAX_VALIDATORS} validators")
    height = ctx.height + VALSET_DELAY
    view.put(P_VALSET + height.to_bytes(8, "big") + pub_key, encode(power))
    return [Event("validator_update_scheduled", (("validator", pub_key.hex()),
                                                 ("power", str(power)),
                                                 ("effective_height", str(height))))]


def validator_updates(view: KVView, height: int) -> tuple[tuple[bytes, int], ...]:
    """Changes scheduled for `height` (what block `height - 2` hands to consensus)."""
    prefix = P_VALSET + height.to_bytes(8, "big")
    return tuple((k[len(prefix):], load(raw)) for k, raw in view.iterate(prefix))


def apply_validator_updates(view: Overlay, height: int) -> list:
    """Begin-block of `height`: the state's validator set follows consensus."""
    from state.events import Event

    events = []
    prefix = P_VALSET + height.to_bytes(8, "big")
    for k, raw in list(view.iterate(prefix)):
        pub_key, power = k[len(prefix):], load(raw)
        params.put_validator(view, pub_key, power)
        view.delete(k)
        events.append(Event("validator_updated", (("validator", pub_key.hex()),
                                                  ("power", str(power)))))
    return events
