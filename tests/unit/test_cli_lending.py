"""The text output of the lending queries (cli/lending_output.py)."""

from cli.lending_output import _pct, account_lines, pools_table


def test_percentages_round_down_without_floats():
    assert [_pct(f) for f in ("0", "0.05", "0.525", "0.000225614532", "1")] == \
        ["0%", "5%", "52.5%", "0.02%", "100%"]


def test_pools_table_and_account_lines():
    pool = {"asset": "USDC", "supplied": "1022500", "borrowed": "525000", "available": "497500",
            "utilisation": "0.513447432762", "borrow_apr": "0.05", "supply_apr": "0.0231",
            "supply_index": "1.0225", "borrow_index": "1.05", "reserve_total": "2500",
            "dust": "0.000001", "params": {"collateral_weight": "0.65",
                                           "maint_collateral_weight": "0.75",
                                           "borrow_weight": "1.1", "maint_borrow_weight": "1.05"}}
    text = pools_table({"height": "7", "pools": [pool]})
    head, row = text.splitlines()[1:]
    assert head.split()[-4:] == ["init/maint", "borrow", "w", "init/maint"] and row.split() == [
        "USDC", "1022500", "525000", "497500", "51.34%", "5%", "2.31%", "1.0225", "1.05", "2500",
        "0.000001", "65%/75%", "110%/105%"]
    assert "none" in pools_table({"height": "7", "pools": []})
    lines = account_lines({
        "lending_enabled": True, "borrow_limit": "3900000", "borrowed_value": "525000",
        "equity": "3375000", "initial_margin": "0", "maintenance_margin": "0", "healthy": True,
        "liquidation_threshold": "4500000", "maint_borrowed_value": "525000",
        "maint_equity": "3975000",
        "assets": [{"asset": "BTC", "balance": "100", "interest": "0", "lent": True},
                   {"asset": "ETH", "balance": "0", "interest": "0", "lent": False},
                   {"asset": "USDC", "balance": "-525000", "interest": "-25000", "lent": False}]})
    assert lines == ["  lending: on", "    BTC: 100 (lent; interest +0)",
                     "    USDC: -525000 (borrowed; interest -25000)",
                     "  borrow limit 3900000, borrowed 525000 (at borrow weight), equity "
                     "3375000, initial margin 0",
                     "  liquidation threshold 4500000, borrowed 525000 (at maintenance borrow "
                     "weight), equity 3975000, maintenance margin 0: healthy"]
    assert account_lines(None) == []
