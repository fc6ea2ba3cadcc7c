"""Hyperliquid actions, run as perpchain's own actions (the `hl` tx type of state.tx.HlTx).

Each Hyperliquid action is translated, deterministically, into the native actions the state
machine already runs (state.placement, state.cancellation, state.isolated, state.ledger), for
the account `eth_account(signer address)` (state.hl_universe), with asset ids, decimal prices
and sizes mapped by state.hl_universe. Nothing here keeps state of its own.

Mapping
-------
- `order` {orders: [wire], grouping}: each order runs as its own sub-transaction (as a native
  batch item). wire = {a asset, b isBuy, p price, s size, r reduceOnly, t type, c cloid?}.
  t.limit.tif Gtc / Ioc / Alo -> kind limit, tif GTC / IOC / ALO. t.trigger {triggerPx,
  isMarket, tpsl}: tpsl "sl" -> stop (stop_market if isMarket, else stop_limit), "tp" ->
  take-profit (take_profit_market / take_profit_limit); a market trigger is IOC with `p` as
  its worst price, a limit trigger GTC. Grouping "na" places each order on its own;
  "normalTpsl" (a parent with its tp/sl) and "positionTpsl" (tp/sl of the whole position)
  are state.hl_grouping's; any other grouping, and a builder fee, is refused
  (HL_UNSUPPORTED).
- Client ids: Hyperliquid's cloid is 16 bytes; a native cloid is a uint64. The cloid
  0x0000000000000000XXXXXXXXXXXXXXXX (first 8 bytes zero, as the SDK's Cloid.from_int makes)
  is the native cloid XXXXXXXXXXXXXXXX; any other (or the zero cloid) is refused with
  INVALID_FIELD, so a cloid maps one-to-one and the façade can print it back.
- `cancel` {cancels: [{a, o}]} -> cancel; `cancelByCloid` {cancels: [{asset, cloid}]} ->
  cancel_cloid; each its own sub-transaction.
- `modify` {oid, order} and `batchModify` {modifies: [...]}: oid is an order id or a cloid
  string. A resting limit order whose new wire keeps its side, tif, reduce-only flag and
  cloid is the native `modify` (a size decrease at the same price keeps priority); any other
  change (or a trigger order) is cancel + a new order (keeping the old cloid unless the wire
  names one), in one sub-transaction.
- `updateLeverage` {asset, isCross, leverage} -> set_margin_mode(cross/isolated, leverage).
- `updateIsolatedMargin` {asset, isBuy, ntli}: ntli is signed USD with 6 decimals (the SDK's
  float_to_usd_int) -> isolated_margin of that many quote units.
- `usdSend` {destination, amount, time}: a transfer of the quote asset to the 0x address's
  account (a 64-hex destination is an Ed25519 account).
- `usdClassTransfer` (perp <-> spot): perpchain has one account per address whose quote
  balance is both the spot balance and the perp collateral, so there is nothing to move:
  a valid request (amount > 0, at most the quote balance, no sub-account) succeeds and
  changes nothing.
- `withdraw3` {destination, amount, time}: the native `withdraw` of the quote asset (burned,
  a `withdrawal` event with the destination for a bridge).
- `scheduleCancel` {time?}: the native `schedule_cancel` (the dead-man switch, with
  Hyperliquid's limit of 10 firings a UTC day).

Results: every order, cancel and modify item adds one `hl_status` event, in item order, with
`index` and `status` = resting (oid, cloid) | filled (oid, cloid, total_sz, avg_px) |
success | error (error text) | waitingForFill (parent) | waitingForTrigger (oid), from which
rpc/hl_exchange.py answers in Hyperliquid's shape.
"""

from state import cancellation, hl_grouping, hl_universe as U, isolated, ledger
from state import lending_actions, placement
from state import orders as O, schedule_cancel
from state import constants as C
from state.amounts import AmountError, format_amount, parse_amount
from state.errors import Code, TxError
from state.events import Event
from state.hl_orders import (field, items, native_cloid, order_fields, placed_status, run_item,
                             status, unsupported)
from state.markets import Market
from state.scope import Scope

USD_DECIMALS = 6          # the SDK's float_to_usd_int (updateIsolatedMargin.ntli)


def check_envelope(tx, ctx) -> None:
    """Authentication-time rules of a Hyperliquid envelope (they leave no trace)."""
    if tx.expires_after is not None and tx.expires_after < ctx.time_ms:
        raise TxError(Code.ACTION_EXPIRED, f"action expired: expiresAfter {tx.expires_after} "
                      f"ms is before the block time {ctx.time_ms} ms")


def run(scope: Scope, tx) -> None:
    """The `hl` tx handler: run `tx.hl_action` for `tx.signer`."""
    if tx.vault is not None:
        raise unsupported("vaults and sub-accounts (vaultAddress) are not supported on this "
                          "chain: send the action without a vault address")
    HANDLERS[tx.hl_type](scope, tx.signer, tx.hl_action)


def quote_amount(scope: Scope, text, where: str) -> int:
    if type(text) is not str:
        raise TxError(Code.INVALID_FIELD, f"{where}: amount must be a decimal string")
    try:
        amount = parse_amount(text, scope.quote_decimals)
    except AmountError as e:
        raise TxError(Code.INVALID_AMOUNT, f"{where}: amount {text!r}: {e}") from None
    if amount <= 0:
        raise TxError(Code.INVALID_AMOUNT, f"{where}: amount must be positive")
    return amount


GROUPINGS = {"normalTpsl": hl_grouping.normal_tpsl, "positionTpsl": hl_grouping.position_tpsl}


def do_order(scope: Scope, owner: bytes, action: dict) -> None:
    grouping = action.get("grouping", "na")
    if action.get("builder") is not None:
        raise unsupported("builder fees are not supported on this chain")
    wires = items(action, "orders")
    if grouping != "na":
        grouped = GROUPINGS.get(grouping) if type(grouping) is str else None
        if grouped is None:
            raise unsupported(f"order grouping {grouping!r} is not supported (na, normalTpsl "
                              "and positionTpsl are)")
        grouped(scope, owner, wires)
        return
    for i, wire in enumerate(wires):
        def place(item: Scope, wire=wire, i=i) -> Event:
            m, fields = order_fields(item.view, wire, f"order {i}")
            placement.place(item, owner, fields)
            return placed_status(item, m, owner, item.events, i)
        run_item(scope, i, place)


# -- cancels -------------------------------------------------------------------------------

def _not_found(e: TxError, asset: int) -> TxError:
    if e.code == Code.ORDER_NOT_FOUND:
        return TxError(e.code, f"Order was never placed, already canceled, or filled. "
                       f"asset={asset}")
    return e


def do_cancel(scope: Scope, owner: bytes, action: dict) -> None:
    by_cloid = action["type"] == "cancelByCloid"
    for i, c in enumerate(items(action, "cancels")):
        def cancel(item: Scope, c=c, i=i) -> Event:
            where = f"cancel {i}"
            asset = field(c, "asset" if by_cloid else "a", int, where)
            m = U.market_for_asset(item.view, asset)
            try:
                if by_cloid:
                    cancellation.cancel_cloid(item, owner, [m.id, native_cloid(c.get("cloid"))])
                else:
                    cancellation.cancel(item, owner, [m.id, field(c, "o", int, where)])
            except TxError as e:
                raise _not_found(e, asset) from None
            return status(i, "success")
        run_item(scope, i, cancel)


# -- modify --------------------------------------------------------------------------------

def _find(scope: Scope, owner: bytes, m: Market, oid) -> O.OrderRecord:
    if type(oid) is str:
        hit = O.cloid_lookup(scope.view, owner, native_cloid(oid))
        o = O.get_open(scope.view, m.id, hit[1]) if hit is not None and hit[0] == m.id else None
    elif type(oid) is int and 0 <= oid <= C.MAX_UINT64:
        o = O.get_open(scope.view, m.id, oid)
    else:
        raise TxError(Code.INVALID_FIELD, "modify: oid must be an order id or a cloid string")
    if o is None or o.owner != owner:
        raise TxError(Code.ORDER_NOT_FOUND, f"Cannot modify canceled or filled order "
                      f"(oid {oid} on {m.symbol})")
    return o


def modify_one(item: Scope, owner: bytes, mod, index: int) -> Event:
    m, f = order_fields(item.view, field(mod, "order", dict, f"modify {index}"),
                        f"modify {index}")
    o = _find(item, owner, m, mod.get("oid"))
    hl_grouping.check_modifiable(item.view, m, o.id)
    _, is_buy, kind, price, size, tif, reduce_only, _, cloid, _ = f
    same = (kind == O.LIMIT and o.kind == O.LIMIT and o.trigger_ticks == 0
            and is_buy == o.is_buy and tif == o.tif and reduce_only == o.reduce_only
            and cloid in (0, o.cloid) and O.get_resting(item.view, m.id, o.id) is not None)
    if same:
        placement.modify(item, owner, [m.id, o.id, price, size])
    else:
        cancellation.cancel(item, owner, [m.id, o.id])
        f[8] = cloid or o.cloid
        placement.place(item, owner, f)
    return placed_status(item, m, owner, item.events, index)


def do_modify(scope: Scope, owner: bytes, action: dict) -> None:
    mods = [action] if action["type"] == "modify" else items(action, "modifies")
    for i, mod in enumerate(mods):
        run_item(scope, i, lambda item, mod=mod, i=i: modify_one(item, owner, mod, i))


# -- leverage, margin, transfers -----------------------------------------------------------

def do_update_leverage(scope: Scope, owner: bytes, action: dict) -> None:
    m = U.market_for_asset(scope.view, field(action, "asset", int, "updateLeverage"))
    is_cross = field(action, "isCross", bool, "updateLeverage")
    leverage = field(action, "leverage", int, "updateLeverage")
    if not 0 < leverage <= C.MAX_UINT64:
        raise TxError(Code.INVALID_LEVERAGE, f"leverage {leverage} must be positive")
    isolated.set_margin_mode(scope, owner, [m.id, isolated.CROSS if is_cross
                                            else isolated.ISOLATED, leverage])


def do_update_isolated_margin(scope: Scope, owner: bytes, action: dict) -> None:
    where = "updateIsolatedMargin"
    m = U.market_for_asset(scope.view, field(action, "asset", int, where))
    ntli = field(action, "ntli", int, where)
    d = scope.quote_decimals
    if d >= USD_DECIMALS:
        amount = ntli * 10 ** (d - USD_DECIMALS)
    elif ntli % 10 ** (USD_DECIMALS - d):
        raise TxError(Code.INVALID_AMOUNT, f"{where}: ntli {ntli} is finer than the quote "
                      f"asset's {d} decimals")
    else:
        amount = ntli // 10 ** (USD_DECIMALS - d)
    if not -C.MAX_INT64 <= amount <= C.MAX_INT64:
        raise TxError(Code.INVALID_AMOUNT, f"{where}: ntli {ntli} is out of range")
    isolated.update_isolated_margin(scope, owner, [m.id, amount])


def destination_account(text) -> bytes:
    """A 0x address (20 bytes) or an Ed25519 address (32 bytes hex) -> its account."""
    if type(text) is str:
        h = text[2:] if text[:2] in ("0x", "0X") else text
        try:
            raw = bytes.fromhex(h)
        except ValueError:
            raw = b""
        if len(raw) == 20:
            return U.eth_account(raw)
        if len(raw) == 32:
            return raw
    raise TxError(Code.INVALID_FIELD, f"destination {text!r} must be a 0x address (40 hex "
                  "digits) or a perpchain address (64 hex digits)")


def do_usd_send(scope: Scope, owner: bytes, action: dict) -> None:
    to = destination_account(action.get("destination"))
    amount = quote_amount(scope, action.get("amount"), "usdSend")
    ledger.move(scope.view, owner, to, scope.quote, amount, scope.quote_decimals)
    placement.check_after_withdrawal(scope, owner)
    scope.events.append(Event("transfer", (
        ("sender", owner.hex()), ("recipient", to.hex()), ("asset", scope.quote),
        ("amount", format_amount(amount, scope.quote_decimals)))))


def do_usd_class_transfer(scope: Scope, owner: bytes, action: dict) -> None:
    text = action.get("amount")
    if type(text) is str and " subaccount:" in text:
        raise unsupported("usdClassTransfer to or from a sub-account is not supported")
    field(action, "toPerp", bool, "usdClassTransfer")
    amount = quote_amount(scope, text, "usdClassTransfer")
    have = ledger.balance(scope.view, owner, scope.quote)
    if amount > have:
        raise TxError(Code.INSUFFICIENT_BALANCE, f"usdClassTransfer of "
                      f"{format_amount(amount, scope.quote_decimals)} exceeds the balance "
                      f"{format_amount(have, scope.quote_decimals)} {scope.quote}")
    # Nothing moves: the quote balance is both the spot balance and the perp collateral.


def do_withdraw(scope: Scope, owner: bytes, action: dict) -> None:
    """The native `withdraw` of the quote asset (state.lending_actions): burned, with a
    `withdrawal` event naming the destination for a bridge."""
    dest = destination_account(action.get("destination"))
    amount = quote_amount(scope, action.get("amount"), "withdraw3")
    lending_actions.withdraw(scope, owner, (scope.quote, amount), "0x" + (
        U.eth_address_of(dest) or dest).hex())


def do_schedule_cancel(scope: Scope, owner: bytes, action: dict) -> None:
    """The native `schedule_cancel` (state.schedule_cancel): `time` sets it, no `time`
    removes it."""
    t = action.get("time")
    if t is not None and (type(t) is not int or t <= 0):
        raise TxError(Code.INVALID_FIELD, "scheduleCancel: time must be a positive integer "
                      "(ms), or absent to remove the schedule")
    schedule_cancel.schedule(scope, owner, (t or 0,))


HANDLERS = {"order": do_order, "cancel": do_cancel, "cancelByCloid": do_cancel,
            "modify": do_modify, "batchModify": do_modify,
            "scheduleCancel": do_schedule_cancel, "updateLeverage": do_update_leverage,
            "updateIsolatedMargin": do_update_isolated_margin, "usdSend": do_usd_send,
            "usdClassTransfer": do_usd_class_transfer, "withdraw3": do_withdraw}
