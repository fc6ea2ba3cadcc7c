"""Hyperliquid names (state/hl_universe.py): asset ids in market-id order, 0x accounts, and
exact decimal prices and sizes."""

import dataclasses

import pytest

from state import hl_universe as HL
from state.errors import Code, TxError
from state.kv import Overlay
from state.markets import FUTURE, list_markets
from tests.chain_helpers import BTC_PERP_SPEC, Chain, trading_genesis

FUT_SPEC = ["BTC-0326", FUTURE] + BTC_PERP_SPEC[2:] + [10**13, 60_000]


def view():
    g = trading_genesis()
    g = dataclasses.replace(g, markets=g.markets + ((9, list(FUT_SPEC)),))
    return Overlay(Chain(g).kv)


def test_assets_follow_market_id_order_perps_then_spot():
    v = view()
    perps, spots = HL.perp_universe(v), HL.spot_universe(v)
    assert [m.id for m in perps] == sorted(m.id for m in list_markets(v) if m.perp_like)
    assert perps[-1].symbol == "BTC-0326" and spots and all(not m.perp_like for m in spots)
    for i, m in enumerate(perps):
        assert HL.market_for_asset(v, i) is m and HL.asset_of_market(v, m.id) == i
    assert HL.market_for_asset(v, 10_000).id == spots[0].id
    assert HL.asset_of_market(v, spots[0].id) == 10_000
    for bad in (len(perps), -1, 10_000 + len(spots), "0"):
        with pytest.raises(TxError) as e:
            HL.market_for_asset(v, bad)
        assert e.value.code == Code.UNKNOWN_MARKET


def test_eth_accounts_are_prefixed_and_told_apart():
    a = bytes(range(1, 21))
    acct = HL.eth_account(a)
    assert len(acct) == 32 and HL.eth_address_of(acct) == a
    assert HL.eth_address_of(b"\x01" + bytes(31)) is None
    with pytest.raises(TxError):
        HL.eth_account(a[:19])


def test_prices_and_sizes_are_exact():
    m = HL.perp_universe(view())[0]
    one_tick, one_lot = HL.price_text(m, 1), HL.size_text(m, 1)
    assert HL.ticks_of(m, HL.price_text(m, 12345)) == 12345
    assert HL.lots_of(m, HL.size_text(m, 77)) == 77
    assert HL.ticks_of(m, one_tick) == 1 and HL.lots_of(m, one_lot) == 1
    assert len(one_lot.partition(".")[2]) == HL.sz_decimals(m)
    with pytest.raises(TxError) as e:
        HL.lots_of(m, one_lot + "1" if "." in one_lot else one_lot + ".1")
    assert e.value.code in (Code.INVALID_LOT, Code.INVALID_AMOUNT)
    with pytest.raises(TxError) as e:
        HL.ticks_of(m, "1e5")
    assert e.value.code == Code.INVALID_AMOUNT
