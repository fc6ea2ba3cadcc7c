"""Relations between limits that must hold whatever their values."""

from consensus import driver
from node.config import Config
from state import constants as C


def test_a_full_block_fits_every_channel_it_travels_on():
    cfg = Config()
    assert C.MAX_TX_BYTES <= C.MAX_BLOCK_BYTES
    assert C.MAX_BLOCK_BYTES < driver.SYNC_MAX_BYTES + C.MAX_BLOCK_BYTES <= cfg.p2p.max_frame_bytes
    # a proposal frame carries one block plus its commit and header
    assert C.MAX_BLOCK_BYTES + 1024 * 1024 < cfg.p2p.max_frame_bytes


def test_mempool_limits_agree_with_protocol_limits():
    cfg = Config()
    assert cfg.mempool.max_tx_bytes <= C.MAX_TX_BYTES
    assert cfg.mempool.max_block_txs <= C.MAX_BLOCK_TXS
    assert cfg.mempool.max_txs_bytes >= C.MAX_BLOCK_BYTES   # a pool can fill a block
    assert cfg.rpc.max_body_bytes >= 2 * C.MAX_TX_BYTES      # base64 of the largest tx fits


def test_nonce_window_and_set():
    assert C.NONCE_SET_SIZE >= 1
    assert C.NONCE_FUTURE_WINDOW_MS < C.NONCE_PAST_WINDOW_MS
