"""Whole-state invariants: what every committed state satisfies, checked from its records.

What this module owns
---------------------
`check_invariants(view, books=None)` reads a whole state (any KVView: a MemoryKV, a node's
store view, an Overlay) and raises `InvariantViolation` naming the first broken invariant and
the record (market, order, account or asset) where it broke. It is an audit, O(size of the
state): property tests, the simulations and `perpchain replay --check-invariants` run it; the
state machine never does. It only reads (through the public readers of the record modules),
uses integers only and iterates in sorted order, like every rule in state/.

The invariants, in the order they are checked (the names are `InvariantViolation.invariant`):

    order_record        every open order has a positive price and 0 < size_lots <= orig_lots
                        (what has filled, orig - size, never exceeds the order's size)
    order_index         an open order id is under exactly one of ord/ and trg/; every open
                        order has exactly one account-orders entry and every such entry names
                        an open order of that account; a client-id entry iff cloid != 0, an
                        expiry entry iff expiry_ms != 0, a trigger-index entry iff it waits
    book_crossed        per market, the best resting bid is below the best resting ask
    book_structure      the book rebuilt from the ord/ records passes
                        `OrderBook.check_invariants` (links, level totals, cached bests)
    book_matches_records  each in-memory book handed in (`books`) equals that rebuild, order
                        for order in price-time priority
    order_aggregates    per account and market, buy/sell lots and tick-lots equal the sums over
                        the account's resting orders, `orders` counts its resting and waiting
    reduce_only_index   the rord/ list of each account and market holds exactly the ids of
                        its resting reduce-only orders, ascending, and no other rord/ key exists
    reduce_only_within_position  an account's resting reduce-only orders on a market are all
                        on the side that closes its position, and total at most |position|
    tpsl_links          (state.hl_tpsl) every normalTpsl group's parent is a resting order
                        of the group's owner, or the group is due (its parent left); every
                        due record has its group; every whole-position or sibling mark names
                        a waiting trigger order
    twap_index          every active TWAP (twap/) has 0 <= filled < size, slices done < its
                        slices, exactly one due-queue entry at its next slice time and one
                        account entry; no queue or account entry names another
    position_basis      a position's cost basis has the position's sign (zero iff flat); spot
                        markets hold no position
    positions_net_zero  per perp and future market, long lots == short lots
    settled_future      a settled dated future (state.futures) has no open order and no
                        position
    pool_balance        the perp settlement pool's quote balance == -(sum of cost bases * q)
    funding_pool        the funding pool's quote balance plus what every position owes in
                        funding not yet settled (state.funding_index) is >= 0: the protocol
                        keeps the rounding and never owes more than it holds
    isolated_margin     an isolated margin (state.isolated) only on an isolated perp entry
                        holding a position: a cross or flat entry holds none
    money_conserved     per asset, the sum of every balance (accounts, pool, fee account, ...)
                        equals the asset's supply; for the quote asset, the balances plus
                        every isolated margin. For an asset with a lending pool the real
                        balances (interest included, rounded against each account) sum to at
                        most the supply: the protocol keeps the rounding
    lending_pool        per pooled asset (state.lending_pools): the pool's scaled totals equal
                        the sums of its accounts' scaled balances (supplied: positive balances
                        of lending accounts; borrowed: negative ones), and the pool's cash
                        (the supply less what is held outside it: raw balances of opted-out
                        and protocol accounts, isolated margins) equals exactly
                        supplied - borrowed + dust, the pool's recorded rounding (>= 0)
    insurance_assets    the insurance fund's balance of every asset other than the quote is
                        >= 0: it takes collateral over only for quote it holds
                        (state.collateral_backstop) and pays out only what it holds
                        (state.bad_debt); (its quote balance may go negative through funding
                        on the positions it took over)
"""

from state import constants as C, hl_tpsl, ledger, lending_pools as LP, orders as O, params
from state import twap
from state.book import OrderBook, Side
from state.books import Books
from state.derived import DerivedCache
from state.kv import KVView
from state.funding_index import FUNDING_POOL
from state.futures import settled
from state.insurance import INSURANCE_FUND
from state.margin import funding_owed
from state.markets import FUTURE, Market, funding_params, list_markets
from state.positions import iter_accounts
from state.settlement import POOL

INVARIANTS = ("order_record", "order_index", "book_crossed", "book_structure",
              "book_matches_records", "order_aggregates", "reduce_only_index",
              "reduce_only_within_position", "twap_index", "position_basis",
              "positions_net_zero", "settled_future", "pool_balance",
              "funding_pool", "isolated_margin", "money_conserved", "lending_pool",
              "insurance_assets")
_ALL_MS = 2**64 - 1          # an expiry / trigger bound above every stored one
_ALL = 2**62                 # a limit above any count of stored entries


class InvariantViolation(AssertionError):
    """A broken whole-state invariant: `invariant` (one of INVARIANTS), `where` (the market,
    order, account or asset at which it broke) and `detail` (what was found)."""

    def __init__(self, invariant: str, where: str, detail: str) -> None:
        super().__init__(f"{invariant}: {where}: {detail}")
        self.invariant = invariant
        self.where = where
        self.detail = detail


def carried_books(cache: DerivedCache | None) -> dict[int, OrderBook] | None:
    """The order books a `DerivedCache` carries to the next block, by market id (None for no
    cache): what `check_invariants(view, books=...)` compares with the records. The caller
    makes sure the cache holds the state of `view` (`DerivedCache.holds`)."""
    return None if cache is None else cache.derived.books.books


def _fail(invariant: str, where: str, detail: str) -> None:
    raise InvariantViolation(invariant, where, detail)


def _order_name(m: int, oid: int) -> str:
    return f"market {m} order {oid}"


def check_invariants(view: KVView, books: dict[int, OrderBook] | None = None) -> None:
    """Raise InvariantViolation at the first broken invariant of the state in `view`.

    `books`: in-memory order books by market id (a node's carried books) that must equal
    the books rebuilt from `view`'s records."""
    markets = list_markets(view)
    resting, waiting = _open_orders(view, markets)
    _check_order_records(resting, waiting)
    _check_order_index(view, markets, resting, waiting)
    _check_books(view, markets, resting, books or {})
    accts = dict(iter_accounts(view))
    _check_aggregates(accts, resting, waiting)
    _check_reduce_only(view, accts, resting)
    _check_tpsl(view, resting, waiting)
    _check_twaps(view)
    bases_q = _check_positions(markets, accts)
    _check_settled(view, markets, {**resting, **waiting}, accts)
    _check_pool(view, bases_q)
    _check_funding_pool(view, accts)
    iso = _check_isolated(accts)
    _check_lending(view, iso)
    _check_money(view, iso)
    _check_insurance(view)


def _open_orders(view: KVView, markets: list[Market]) -> tuple[dict, dict]:
    """{(market, id): OrderRecord} of resting and of waiting trigger orders."""
    resting = {(m.id, o.id): o for m in markets for o in O.iter_resting(view, m.id)}
    waiting = {(m.id, o.id): o for m in markets for o in _iter_triggers(view, m.id)}
    return resting, waiting


def _iter_triggers(view: KVView, market: int):
    """Waiting trigger orders of a market in id order (keys: prefix, market, id)."""
    prefix = O.P_TRIGGER + market.to_bytes(4, "big")
    for k, raw in view.iterate(prefix):
        yield O.record_from(market, int.from_bytes(k[len(prefix):], "big"), raw)


def _check_order_records(resting: dict, waiting: dict) -> None:
    for recs in (resting, waiting):
        for key in sorted(recs):
            o = recs[key]
            if o.price_ticks <= 0:
                _fail("order_record", _order_name(*key), f"price {o.price_ticks} ticks")
            if not 0 < o.size_lots <= o.orig_lots:
                _fail("order_record", _order_name(*key), f"remaining {o.size_lots} lots of an "
                      f"order of {o.orig_lots} lots (filled {o.orig_lots - o.size_lots})")


def _check_order_index(view: KVView, markets: list[Market], resting: dict,
                       waiting: dict) -> None:
    both = [k for k in sorted(resting) if k in waiting]
    if both:
        _fail("order_index", _order_name(*both[0]), "both resting (ord/) and waiting (trg/)")
    open_ = {**resting, **waiting}
    _check_account_orders(view, open_)
    _check_cloids(view, open_)
    expiring = O.expired(view, _ALL_MS, _ALL)
    want = sorted(k for k, o in open_.items() if o.expiry_ms)
    if sorted(expiring) != want:
        diff = _first_difference(sorted(expiring), want)
        _fail("order_index", _order_name(*diff), "the expiry index disagrees with the "
              f"records ({len(expiring)} entries for {len(want)} orders with an expiry)")
    for m in markets:
        indexed = O.fired_triggers(view, m.id, _ALL_MS, 0, _ALL)
        want = sorted(oid for (mid, oid) in waiting if mid == m.id)
        if indexed != want:
            _fail("order_index", _order_name(m.id, _first_difference(indexed, want)),
                  f"the trigger index disagrees with the trg/ records ({len(indexed)} "
                  f"entries, {len(want)} orders)")


def _first_difference(a: list, b: list):
    """The first element in one of two different sorted lists but not in the other."""
    for x, y in zip(a, b):
        if x != y:
            return min(x, y)
    return a[len(b)] if len(a) > len(b) else b[len(a)]


def _check_account_orders(view: KVView, open_: dict) -> None:
    """Every open order has its account-orders entry, and every entry an open order."""
    owners = {o.owner: True for o in open_.values()}
    owners.update((a, True) for a in _account_order_owners(view))
    listed: dict[tuple[int, int], bool] = {}
    for owner in sorted(owners):
        for key in O.account_order_ids(view, owner):
            o = open_.get(key)
            if o is None or o.owner != owner:
                _fail("order_index", _order_name(*key), f"listed as an open order of "
                      f"{owner.hex()}, which " + ("is not open" if o is None else
                                                  f"belongs to {o.owner.hex()}"))
            listed[key] = True
    missing = [k for k in sorted(open_) if k not in listed]
    if missing:
        _fail("order_index", _order_name(*missing[0]), "not listed among its owner's orders")


def _check_cloids(view: KVView, open_: dict) -> None:
    """A client-id entry for each open order with a client id, and for no other."""
    with_cloid = 0
    for key in sorted(open_):
        o = open_[key]
        if o.cloid:
            with_cloid += 1
            if O.cloid_lookup(view, o.owner, o.cloid) != key:
                _fail("order_index", _order_name(*key), f"client id {o.cloid} of owner "
                      f"{o.owner.hex()} maps to {O.cloid_lookup(view, o.owner, o.cloid)}")
    entries = sum(1 for _ in view.iterate(O.P_CLOID))
    if entries != with_cloid:
        _fail("order_index", "client ids", f"{entries} client-id entries for {with_cloid} "
              "open orders with a client id")


def _account_order_owners(view: KVView):
    """The addresses with an account-orders entry (keys: prefix, address, market, id)."""
    n = len(O.P_ACCOUNT_ORDERS)
    last = None
    for k, _ in view.iterate(O.P_ACCOUNT_ORDERS):
        addr = k[n:n + C.PUBKEY_BYTES]
        if addr != last:
            last = addr
            yield addr


def _check_books(view: KVView, markets: list[Market], resting: dict,
                 books: dict[int, OrderBook]) -> None:
    for m in markets:
        where = f"market {m.id} ({m.symbol})"
        bids = [o.price_ticks for (mid, _), o in resting.items() if mid == m.id and o.is_buy]
        asks = [o.price_ticks for (mid, _), o in resting.items() if mid == m.id and not o.is_buy]
        if bids and asks and max(bids) >= min(asks):
            _fail("book_crossed", where, f"best bid {max(bids)} >= best ask {min(asks)} ticks")
        try:
            rebuilt = Books().build(view, m.id)
            rebuilt.check_invariants()
        except (AssertionError, ValueError) as e:
            _fail("book_structure", where, str(e))
        held = books.get(m.id)
        if held is not None:
            _compare_books(where, held, rebuilt)


def _book_rows(book: OrderBook) -> list[tuple]:
    return [(int(side), o.price_ticks, o.order_id, o.owner, o.size_lots)
            for side in (Side.BUY, Side.SELL) for o in book.orders(side)]


def _compare_books(where: str, held: OrderBook, rebuilt: OrderBook) -> None:
    try:
        held.check_invariants()
    except AssertionError as e:
        _fail("book_matches_records", where, f"the in-memory book is broken: {e}")
    a, b = _book_rows(held), _book_rows(rebuilt)
    if a != b:
        diff = next((x, y) for x, y in zip(a + [None] * len(b), b + [None] * len(a)) if x != y)
        _fail("book_matches_records", where, f"{len(a)} orders in memory, {len(b)} in the "
              f"records; first difference (side, price, id, owner, lots): in memory "
              f"{diff[0]}, in the records {diff[1]}")


def _expected_aggregates(resting: dict, waiting: dict) -> dict:
    """{(owner, market): [buy_lots, buy_tl, sell_lots, sell_tl, orders]} from the records."""
    agg: dict[tuple[bytes, int], list[int]] = {}
    for (mid, _), o in sorted(resting.items()):
        a = agg.setdefault((o.owner, mid), [0, 0, 0, 0, 0])
        i = 0 if o.is_buy else 2
        a[i] += o.size_lots
        a[i + 1] += o.size_lots * o.price_ticks
        a[4] += 1
    for (mid, _), o in sorted(waiting.items()):
        agg.setdefault((o.owner, mid), [0, 0, 0, 0, 0])[4] += 1
    return agg


def _check_aggregates(accts: dict, resting: dict, waiting: dict) -> None:
    want = _expected_aggregates(resting, waiting)
    have = {(addr, mid): [e.buy_lots, e.buy_tl, e.sell_lots, e.sell_tl, e.orders]
            for addr, acct in accts.items() for mid, e in acct.entries.items()}
    for key in sorted({**want, **have}):
        w, h = want.get(key, [0] * 5), have.get(key, [0] * 5)
        if w != h:
            _fail("order_aggregates", f"account {key[0].hex()} market {key[1]}",
                  "[buy_lots, buy_tl, sell_lots, sell_tl, orders] is "
                  f"{h} but its open orders give {w}")


def _check_reduce_only(view: KVView, accts: dict, resting: dict) -> None:
    """reduce_only_index and reduce_only_within_position."""
    want: dict[tuple[bytes, int], list] = {}
    for (mid, _), o in sorted(resting.items()):
        if o.reduce_only:
            want.setdefault((o.owner, mid), []).append(o)
    for (owner, mid), orders in sorted(want.items()):
        where = f"account {owner.hex()} market {mid}"
        ids = [o.id for o in orders]
        if O.reduce_only_ids(view, owner, mid) != ids:
            _fail("reduce_only_index", where, f"rord/ lists "
                  f"{O.reduce_only_ids(view, owner, mid)}; the resting reduce-only orders are "
                  f"{ids}")
        acct = accts.get(owner)
        pos = 0 if acct is None else acct.size(mid)
        if any((pos > 0) == o.is_buy or pos == 0 for o in orders):
            _fail("reduce_only_within_position", where, f"a reduce-only order on the side that "
                  f"would grow the position of {pos} lots")
        if sum(o.size_lots for o in orders) > abs(pos):
            _fail("reduce_only_within_position", where, f"reduce-only orders of "
                  f"{sum(o.size_lots for o in orders)} lots exceed the position of {pos} lots")
    entries = sum(1 for _ in view.iterate(O.P_REDUCE_ONLY))
    if entries != len(want):
        _fail("reduce_only_index", "rord/", f"{entries} entries for {len(want)} accounts and "
              "markets with resting reduce-only orders")


def _check_tpsl(view: KVView, resting: dict, waiting: dict) -> None:
    due = dict.fromkeys(hl_tpsl.all_keys(view, hl_tpsl.P_DUE))
    groups = dict.fromkeys(hl_tpsl.all_keys(view, hl_tpsl.P_GROUP))
    for m, parent in groups:
        o = resting.get((m, parent))
        if (m, parent) not in due and (o is None or o.owner != hl_tpsl.group(view, m, parent)[0]):
            _fail("tpsl_links", _order_name(m, parent), "a tp/sl group waits for a parent "
                  "that is not a resting order of its owner, and is not due")
    for m, parent in [k for k in due if k not in groups]:
        _fail("tpsl_links", _order_name(m, parent), "a due tp/sl record without its group")
    for prefix in (hl_tpsl.P_WHOLE, hl_tpsl.P_SIBLING):
        for m, oid in hl_tpsl.all_keys(view, prefix):
            if (m, oid) not in waiting:
                _fail("tpsl_links", _order_name(m, oid), f"a {prefix.decode()} mark on an "
                      "order that is not a waiting trigger order")


def _check_twaps(view: KVView) -> None:
    twaps = list(twap.iter_twaps(view))
    for tw in twaps:
        if not 0 <= tw.filled_lots < tw.size_lots or not 0 <= tw.slices_done < tw.slices:
            _fail("twap_index", f"twap {tw.id}", f"filled {tw.filled_lots} of {tw.size_lots} "
                  f"lots, {tw.slices_done} of {tw.slices} slices done: it should have ended")
    want = sorted((tw.due_ms(), tw.id) for tw in twaps)
    if twap.queued(view) != want:
        _fail("twap_index", "twapq/", f"the due queue {twap.queued(view)[:5]} disagrees with "
              f"the TWAPs {want[:5]}")
    listed = sorted((owner, i) for owner in sorted({tw.owner: 0 for tw in twaps})
                    for i in twap.account_twaps(view, owner))
    entries = sum(1 for _ in view.iterate(twap.P_ACCOUNT))
    if listed != sorted((tw.owner, tw.id) for tw in twaps) or entries != len(twaps):
        _fail("twap_index", "atwap/", f"{entries} account entries for {len(twaps)} TWAPs")


def _check_positions(markets: list[Market], accts: dict) -> int:
    """Check the positions; return the sum of the perp cost bases * q (quote quantums)."""
    by_id = {m.id: m for m in markets}
    net = {m.id: 0 for m in markets if m.perp_like}
    bases_q = 0
    for addr in sorted(accts):
        for mid in sorted(accts[addr].entries):
            e = accts[addr].entries[mid]
            where = f"account {addr.hex()} market {mid}"
            m = by_id.get(mid)
            if m is None:
                if e.size or e.entry_tl:
                    _fail("position_basis", where, "a position on an unknown market")
                continue
            if not m.perp_like and (e.size or e.entry_tl):
                _fail("position_basis", where, f"a position of {e.size} lots (basis "
                      f"{e.entry_tl}) on a spot market")
            if (e.size > 0) != (e.entry_tl > 0) or (e.size < 0) != (e.entry_tl < 0):
                _fail("position_basis", where, f"size {e.size} lots with cost basis "
                      f"{e.entry_tl} tick-lots")
            if m.perp_like:
                net[mid] += e.size
                bases_q += e.entry_tl * m.q
    for mid in sorted(net):
        if net[mid]:
            _fail("positions_net_zero", f"market {mid} ({by_id[mid].symbol})",
                  f"positions sum to {net[mid]} lots")
    return bases_q


def _check_settled(view: KVView, markets: list[Market], open_orders: dict, accts: dict) -> None:
    for m in markets:
        if m.kind != FUTURE or settled(view, m.id) is None:
            continue
        where = f"market {m.id} ({m.symbol})"
        for mid, oid in sorted(open_orders):
            if mid == m.id:
                _fail("settled_future", where, f"order {oid} is still open")
        for addr in sorted(accts):
            e = accts[addr].entries.get(m.id)
            if e is not None and (e.size or e.entry_tl):
                _fail("settled_future", where, f"account {addr.hex()} still holds {e.size} "
                      "lots")


def _check_pool(view: KVView, bases_q: int) -> None:
    quote = params.quote_asset(view)
    pool = ledger.balance(view, POOL, quote)
    if pool != -bases_q:
        _fail("pool_balance", f"pool {POOL.hex()}", f"holds {pool} {quote} quantums; "
              f"-(sum of cost bases * q) is {-bases_q}")


def _check_funding_pool(view: KVView, accts: dict) -> None:
    funded = funding_params(view)
    owed = sum(funding_owed(view, e) for addr in sorted(accts)
               for mid, e in sorted(accts[addr].entries.items()) if e.size and mid in funded)
    quote = params.quote_asset(view)
    pool = ledger.balance(view, FUNDING_POOL, quote)
    if pool + owed < 0:
        _fail("funding_pool", f"pool {FUNDING_POOL.hex()}", f"holds {pool} {quote} quantums "
              f"and positions owe {owed}: {-(pool + owed)} short")


def _all_balances(view: KVView) -> dict[str, int]:
    """Sum of every balance per asset, over every address holding one (balance keys:
    prefix, 32-byte address, symbol)."""
    start = len(ledger.P_BAL)
    holders = {k[start:start + C.PUBKEY_BYTES]: True for k, _ in view.iterate(ledger.P_BAL)}
    sums: dict[str, int] = {}
    for addr in sorted(holders):
        for asset, amount in sorted(ledger.balances(view, addr).items()):
            sums[asset] = sums.get(asset, 0) + amount
    return sums


def _check_isolated(accts: dict) -> int:
    """Check where isolated margins are; return their sum (quote quantums)."""
    total = 0
    for addr in sorted(accts):
        for mid in sorted(accts[addr].entries):
            e = accts[addr].entries[mid]
            if e.iso_margin and not (e.isolated and e.size):
                _fail("isolated_margin", f"account {addr.hex()} market {mid}",
                      f"isolated margin {e.iso_margin} on a " +
                      ("flat entry" if e.isolated else "cross entry"))
            total += e.iso_margin
    return total


def _check_money(view: KVView, isolated_total: int = 0) -> None:
    sums = _all_balances(view)
    if isolated_total:
        quote = params.quote_asset(view)
        sums[quote] = sums.get(quote, 0) + isolated_total
    for asset in sorted({**sums, **{a: 0 for a in params.list_assets(view)}}):
        have, supply = sums.get(asset, 0), ledger.supply(view, asset)
        if have != supply and not (asset in LP.pool_params(view) and have <= supply):
            _fail("money_conserved", f"asset {asset}", f"balances sum to {have} quantums; "
                  f"the supply is {supply}")


def _check_lending(view: KVView, isolated_total: int) -> None:
    """The `lending_pool` invariant (see the module docstring)."""
    pools = LP.pool_params(view)
    if not pools:
        return
    quote, start = params.quote_asset(view), len(ledger.P_BAL)
    for sym in sorted(pools):
        sup = bor = outside = 0
        for k, _ in view.iterate(ledger.P_BAL):
            if k[start + C.PUBKEY_BYTES:].decode() != sym:
                continue
            addr = k[start:start + C.PUBKEY_BYTES]
            stored, how = ledger.stored_balance(view, addr, sym), LP.mode(view, addr)
            if stored > 0 and how == LP.LENDING:
                sup += stored
            elif stored < 0 and how != LP.RAW:
                bor -= stored
            else:
                outside += stored
        p = LP.get_pool(view, sym)
        if (sup, bor) != (p.scaled_supplied, p.scaled_borrowed):
            _fail("lending_pool", f"asset {sym}", f"accounts hold {sup} scaled supplied and "
                  f"{bor} borrowed; the pool records {p.scaled_supplied} and "
                  f"{p.scaled_borrowed}")
        cash = ledger.supply(view, sym) - outside - (isolated_total if sym == quote else 0)
        if cash != p.net + p.dust or p.dust < 0:
            _fail("lending_pool", f"asset {sym}", f"cash {cash} quantums is not supplied "
                  f"{p.supplied} - borrowed {p.borrowed} + dust {p.dust} (dust >= 0)")


def _check_insurance(view: KVView) -> None:
    """The `insurance_assets` invariant (see the module docstring)."""
    quote = params.quote_asset(view)
    for asset, amount in sorted(ledger.balances(view, INSURANCE_FUND).items()):
        if asset != quote and amount < 0:
            _fail("insurance_assets", f"asset {asset}", f"the insurance fund holds {amount} "
                  f"quantums (< 0)")
