"""The single-validator block producer: a trio loop around consensus/solo.py.

Every `block_interval` it asks the application for txs, builds and executes the block,
signs its commit and commits it. With `create_empty_blocks = false` it waits for a tx
(or for `create_empty_blocks_interval`, when that is non-zero) before the next block.
The BFT driver of the consensus issue replaces this loop behind the same three
application calls (propose / execute / commit).
"""

import logging

import trio

from consensus.solo import SoloProposer
from node.app import Application, now_ms
from node.config import parse_duration_ms
from state import constants as C

log = logging.getLogger("perpchain.engine")


async def run_solo(app: Application, proposer: SoloProposer, task_status=trio.TASK_STATUS_IGNORED):
    cons = app.cfg.consensus
    interval = app.cfg.block_interval_ms / 1000
    empty_interval = parse_duration_ms(cons.create_empty_blocks_interval) / 1000
    max_txs = min(app.cfg.mempool.max_block_txs, C.MAX_BLOCK_TXS)
    task_status.started()
    next_at = trio.current_time()
    while True:
        await trio.sleep_until(next_at)
        if not cons.create_empty_blocks and not len(app.mempool):
            with trio.move_on_after(empty_interval if empty_interval > 0 else float("inf")):
                await app.wait_for_txs()
        started = trio.current_time()
        produce_block(app, proposer, max_txs)
        next_at = started + interval
        await trio.sleep(0)  # let RPC tasks run even when blocks take a whole interval


def produce_block(app: Application, proposer: SoloProposer, max_txs: int) -> None:
    txs = app.propose(max_txs, C.MAX_BLOCK_BYTES)
    block = proposer.make_block(app.tip, txs, now_ms())
    result = app.execute(block)
    commit = proposer.commit(block, now_ms())
    app.commit(block, commit, result)
    if txs:
        ok = sum(1 for r in result.tx_results if r.code == 0)
        log.info("committed height=%d txs=%d ok=%d app_hash=%s", block.header.height,
                 len(txs), ok, result.app_hash.hex()[:16])
