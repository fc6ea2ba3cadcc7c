"""Text output of the lending queries: the `query pools` table and the lending lines of
`query account` (the node's JSON answers: rpc/lending_methods.py; `--json` prints those).
Both weights of each pool show, initial (borrow limit, initial margin) / maintenance
(liquidation), and the account's lines at each."""

from decimal import ROUND_DOWN, Decimal

from cli.output import table


def _pct(fraction: str) -> str:
    """"0.0525" -> "5.25%", rounded down to 0.01%."""
    v = (Decimal(fraction) * 100).quantize(Decimal("0.01"), rounding=ROUND_DOWN).normalize()
    return f"{v:f}%"


def _weights(p: dict, field: str) -> str:
    """"65%/75%": a pool's initial / maintenance weight `field` (collateral or borrow)."""
    prm = p.get("params") or {}
    if field not in prm:
        return "-"
    return f"{_pct(prm[field])}/{_pct(prm.get('maint_' + field, prm[field]))}"


def pools_table(answer: dict) -> str:
    rows = [[p["asset"], p["supplied"], p["borrowed"], p["available"], _pct(p["utilisation"]),
             _pct(p["borrow_apr"]), _pct(p["supply_apr"]), p["supply_index"],
             p["borrow_index"], p["reserve_total"], p["dust"],
             _weights(p, "collateral_weight"), _weights(p, "borrow_weight")]
            for p in answer["pools"]]
    head = f"lending pools at height {answer['height']}"
    if not rows:
        return head + ": none (this chain has no lending)"
    return head + "\n" + table(
        ["asset", "supplied", "borrowed", "available", "util", "borrow apr", "supply apr",
         "supply idx", "borrow idx", "reserve", "dust", "coll w init/maint",
         "borrow w init/maint"], rows, set(range(1, 13)))


def account_lines(lending: dict | None) -> list[str]:
    """The lending part of `query account` (nothing on a chain without pools)."""
    if not lending:
        return []
    out = [f"  lending: {'on' if lending['lending_enabled'] else 'off (opted out)'}"]
    for r in lending["assets"]:
        if r["balance"] == "0" and r["interest"] == "0":
            continue
        sign = "" if r["interest"].startswith("-") else "+"
        what = "lent" if r["lent"] else ("borrowed" if r["balance"].startswith("-")
                                         else "not lent")
        out.append(f"    {r['asset']}: {r['balance']} ({what}; interest {sign}"
                   f"{r['interest']})")
    out.append(f"  borrow limit {lending['borrow_limit']}, borrowed {lending['borrowed_value']}"
               f" (at borrow weight), equity {lending['equity']}, initial margin "
               f"{lending['initial_margin']}")
    out.append(f"  liquidation threshold {lending.get('liquidation_threshold', '-')}, borrowed "
               f"{lending.get('maint_borrowed_value', '-')} (at maintenance borrow weight), "
               f"equity {lending.get('maint_equity', lending['equity'])}, maintenance margin "
               f"{lending['maintenance_margin']}: "
               + ("healthy" if lending["healthy"] else "below maintenance margin"))
    return out
