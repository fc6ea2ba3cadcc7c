"""Decimal strings <-> integer quantums, without floats or Decimal.

Users and JSON speak in asset units as decimal strings ("12.5"); the state speaks in
integer quantums (1e-decimals of the asset). Parsing is exact: an amount with more
fractional digits than the asset has is an error, never silently rounded.
"""

import re

_AMOUNT_RE = re.compile(r"^([0-9]+)(?:\.([0-9]+))?$")


class AmountError(ValueError):
    pass


def parse_amount(text: str, decimals: int) -> int:
    """'12.5' with 6 decimals -> 12_500_000. Raises AmountError on anything inexact."""
    if not isinstance(text, str):
        raise AmountError(f"amount must be a decimal string, got {type(text).__name__}")
    m = _AMOUNT_RE.match(text.strip())
    if not m:
        raise AmountError(f"{text!r} is not a non-negative decimal number like '12.5'")
    whole, frac = m.group(1), m.group(2) or ""
    if len(frac) > decimals:
        raise AmountError(f"{text!r} has more than {decimals} decimal places")
    return int(whole) * 10**decimals + int(frac.ljust(decimals, "0") or "0")


def format_amount(quantums: int, decimals: int) -> str:
    """12_500_000 with 6 decimals -> '12.5' (no trailing zeros, sign kept)."""
    sign = "-" if quantums < 0 else ""
    whole, frac = divmod(abs(quantums), 10**decimals)
    if decimals == 0 or frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{str(frac).rjust(decimals, '0').rstrip('0')}"
