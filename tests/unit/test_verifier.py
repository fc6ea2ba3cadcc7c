"""Every verifier mode gives the same answers, in order."""

import pytest
import trio

from node.verifier import Verifier
from state.codec import decode, encode
from state.tx import decode_tx
from tests.chain_helpers import key, transfer


def _txs():
    good = [decode_tx(transfer(key(i % 3), 1000 + i, key(5).pub_key, 1)) for i in range(70)]
    bad = []
    for t in good[::7]:
        obj = decode(t.raw)
        obj[4] = bytes(64)
        bad.append(decode_tx(encode(obj)))
    txs = good + bad
    return txs, [True] * len(good) + [False] * len(bad)


@pytest.mark.parametrize("threads,processes", [(-1, 0), (2, 0), (0, 2)])
def test_modes_agree(threads, processes):
    txs, expected = _txs()
    v = Verifier(threads, processes)
    try:
        assert trio.run(v.verify, txs) == expected
        assert trio.run(v.verify, []) == []
    finally:
        v.close()


def test_a_killed_worker_process_is_replaced_and_no_check_fails():
    import os
    import signal
    txs, expected = _txs()
    v = Verifier(0, 2)
    try:
        assert trio.run(v.verify, txs) == expected
        victim = next(iter(v.pool._processes))
        os.kill(victim, signal.SIGKILL)
        for _ in range(3):
            assert trio.run(v.verify, txs) == expected
        assert v.rebuilds == 1 and victim not in v.pool._processes
    finally:
        v.close()
