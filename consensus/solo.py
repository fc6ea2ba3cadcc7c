"""Single-validator block production: the degenerate case of consensus.

`SoloProposer` builds the next block from the application's proposed txs and signs its
commit with the one validator key. It has no I/O and takes time as an argument; the node's
driver (node/engine.py) calls it on the block interval, through the same
propose/execute/commit interface the BFT rounds will use. The commit it makes is a real
+2/3 commit (one validator holding all the power), so sync and replay verify it the same
way they will verify BFT commits.
"""

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consensus.types import (PRECOMMIT, Block, ChainTip, Commit, CommitSig, Header,
                             ValidatorSet, data_hash, vote_sign_bytes)


class SoloProposer:
    def __init__(self, chain_id: str, key: Ed25519PrivateKey, pub_key: bytes, vals: ValidatorSet):
        if vals.power_of(pub_key) == 0 or not vals.has_quorum(vals.power_of(pub_key)):
            raise ValueError("solo production needs a validator holding more than 2/3 power")
        self.chain_id, self.key, self.pub_key, self.vals = chain_id, key, pub_key, vals

    def make_block(self, tip: ChainTip, txs: list[bytes], now_ms: int) -> Block:
        """The next block; its time is now, but always after the previous block's."""
        header = Header(
            chain_id=self.chain_id,
            height=tip.height + 1,
            time_ms=max(now_ms, tip.time_ms + 1),
            last_block_hash=tip.block_hash,
            last_commit_hash=b"" if tip.last_commit is None else tip.last_commit.hash(),
            data_hash=data_hash(txs),
            validators_hash=self.vals.hash(),
            app_hash=tip.app_hash,
            last_results_hash=tip.results_hash,
            proposer=self.pub_key,
        )
        return Block(header, tuple(txs), tip.last_commit)

    def commit(self, block: Block, now_ms: int) -> Commit:
        """Sign the precommit for `block` and wrap it as its commit."""
        t = max(now_ms, block.header.time_ms)
        msg = vote_sign_bytes(self.chain_id, PRECOMMIT, block.header.height, 0, block.hash(), t)
        return Commit(block.header.height, 0, block.hash(),
                      (CommitSig(self.pub_key, t, self.key.sign(msg)),))
