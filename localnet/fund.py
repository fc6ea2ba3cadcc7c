"""`perpchain localnet up --fund ADDRESS=AMOUNT`: quote-asset balances credited at genesis.

ADDRESS is a perpchain (Ed25519) address, 64 hex digits, or an Ethereum address, 0x and 40
hex digits (its account is twelve zero bytes then the address: state/hl_universe.py), so a
bot's Hyperliquid key can trade at once. AMOUNT is a decimal string in quote units
("10000", "2.5"). The same address twice adds up; an address the genesis already credits in
the quote asset gets the sum too.
"""

from node.keys import parse_address
from state.amounts import AmountError, format_amount, parse_amount


class FundError(ValueError):
    """A --fund value that cannot be read."""


def parse_fund(text: str) -> tuple[str, str]:
    """"ADDRESS=AMOUNT" -> (64-hex account address, amount text), checked."""
    addr, sep, amount = text.partition("=")
    if not sep or not addr.strip() or not amount.strip():
        raise FundError(f"--fund {text!r}: expected ADDRESS=AMOUNT, e.g. 0xAbC...=10000")
    a = addr.strip().lower()
    if a.startswith("0x") and len(a) == 42:
        a = "00" * 12 + a[2:]
    try:
        account = parse_address(a).hex()
    except ValueError as e:
        raise FundError(f"--fund {text!r}: {e}; or an Ethereum address (0x + 40 hex)") from None
    return account, amount.strip()


def fund_genesis(funds: list[tuple[str, str]], then=None):
    """An `edit_genesis(doc, genesis_time_ms)` adding `funds` to the quote balances (after
    `then`, another edit, if given)."""
    def edit(doc: dict, genesis_time_ms: int) -> None:
        if then is not None:
            then(doc, genesis_time_ms)
        app = doc["app_state"]
        quote = app["quote_asset"]
        decimals = next(a["decimals"] for a in app["assets"] if a["symbol"] == quote)
        totals: dict[str, int] = {}
        for account, text in funds:
            try:
                q = parse_amount(text, decimals)
            except AmountError as e:
                raise FundError(f"--fund {account}={text}: {e}") from None
            if q <= 0:
                raise FundError(f"--fund {account}={text}: the amount must be positive")
            totals[account] = totals.get(account, 0) + q
        for b in app["balances"]:
            if b["asset"] == quote and b["address"].lower() in totals:
                q = totals.pop(b["address"].lower()) + parse_amount(b["amount"], decimals)
                b["amount"] = format_amount(q, decimals)
        app["balances"] += [{"address": a, "asset": quote,
                             "amount": format_amount(q, decimals)} for a, q in sorted(totals.items())]
    return edit
