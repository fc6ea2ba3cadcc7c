"""The p2p handshake and framing on real loopback sockets."""

import trio
import trio.testing

from node.keys import KeyPair
from node.p2p import P2P, PeerAddr, _pack


def _port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, key: KeyPair, chain: str = "c", peers=(), allowed=(), max_frame=1 << 20):
        self.key, self.port = key, _port()
        self.got = []
        self.p2p = P2P(key, chain, ("127.0.0.1", self.port), list(peers),
                       lambda peer, t, b: self.got.append((peer, t, b)), None, allowed, max_frame)

    def addr(self) -> PeerAddr:
        return PeerAddr(self.key.node_id, "127.0.0.1", self.port)


async def _wait(pred, seconds=5.0):
    with trio.fail_after(seconds):
        while not pred():
            await trio.sleep(0.01)


def test_peers_authenticate_and_exchange_frames():
    async def main():
        a, b = Node(KeyPair.generate()), Node(KeyPair.generate())
        a.p2p.persistent = [b.addr()]
        a.p2p.allowed = {b.key.node_id}
        b.p2p.allowed = {a.key.node_id}
        async with trio.open_nursery() as n:
            await n.start(b.p2p.run)
            await n.start(a.p2p.run)
            await _wait(lambda: b.key.node_id in a.p2p.peers and a.key.node_id in b.p2p.peers)
            a.p2p.broadcast(12, b"hello")
            b.p2p.send(a.key.node_id, 13, [1, 2])
            await _wait(lambda: b.got and a.got)
            assert b.got == [(a.key.node_id, 12, b"hello")]
            assert a.got == [(b.key.node_id, 13, [1, 2])]
            n.cancel_scope.cancel()
    trio.run(main)


def test_unknown_peer_and_wrong_chain_are_refused():
    async def main():
        b = Node(KeyPair.generate())
        stranger = Node(KeyPair.generate(), peers=[])
        other_chain = Node(KeyPair.generate(), chain="other")
        b.p2p.allowed = {other_chain.key.node_id}           # stranger is not allowed
        stranger.p2p.persistent = [b.addr()]
        stranger.p2p.allowed = {b.key.node_id}
        other_chain.p2p.persistent = [b.addr()]
        other_chain.p2p.allowed = {b.key.node_id}
        async with trio.open_nursery() as n:
            await n.start(b.p2p.run)
            await n.start(stranger.p2p.run)
            await n.start(other_chain.p2p.run)
            await trio.sleep(1.0)
            assert b.p2p.peers == {}
            assert stranger.p2p.peers == {} and other_chain.p2p.peers == {}
            n.cancel_scope.cancel()
    trio.run(main)


def test_impostor_with_wrong_node_id_is_refused():
    async def main():
        b = Node(KeyPair.generate())
        a = Node(KeyPair.generate())
        # a dials b's address but expects someone else's node id there
        a.p2p.persistent = [PeerAddr(KeyPair.generate().node_id, "127.0.0.1", b.port)]
        a.p2p.allowed = {a.p2p.persistent[0].node_id}
        b.p2p.allowed = {a.key.node_id}
        async with trio.open_nursery() as n:
            await n.start(b.p2p.run)
            await n.start(a.p2p.run)
            await trio.sleep(1.0)
            assert a.p2p.peers == {}
            n.cancel_scope.cancel()
    trio.run(main)


def test_oversized_frame_drops_the_peer():
    async def main():
        a = Node(KeyPair.generate())
        b = Node(KeyPair.generate(), max_frame=1000)
        a.p2p.persistent = [b.addr()]
        a.p2p.allowed = {b.key.node_id}
        b.p2p.allowed = {a.key.node_id}
        async with trio.open_nursery() as n:
            await n.start(b.p2p.run)
            await n.start(a.p2p.run)
            await _wait(lambda: a.key.node_id in b.p2p.peers and b.key.node_id in a.p2p.peers)
            a.p2p.broadcast(12, b"x" * 5000)
            await _wait(lambda: a.key.node_id not in b.p2p.peers)
            assert b.got == []
            n.cancel_scope.cancel()
    trio.run(main)


def test_frame_layout():
    f = _pack(12, b"ab")
    assert f[:4] == (len(f) - 4).to_bytes(4, "big")


# -- limits, scores and bans (issue 8) ---------------------------------------------------------

from node.p2p import PeerLimits  # noqa: E402


def _pair(limits_b: PeerLimits | None = None, **kw):
    a, b = Node(KeyPair.generate()), Node(KeyPair.generate())
    if limits_b is not None:
        b.p2p.limits = limits_b
        b.p2p.max_frame = limits_b.max_frame_bytes
    a.p2p.persistent = [b.addr()]
    a.p2p.allowed = {b.key.node_id}
    b.p2p.allowed = {a.key.node_id}
    return a, b


def test_a_flooding_peer_is_disconnected_and_banned_then_let_back():
    async def main():
        a, b = _pair(PeerLimits(max_msgs_per_s=100, max_msgs_burst=200, ban_ms=1500))
        gone = []
        b.p2p.on_disconnect = gone.append
        async with trio.open_nursery() as n:
            await n.start(b.p2p.run)
            await n.start(a.p2p.run)
            await _wait(lambda: a.key.node_id in b.p2p.peers and b.key.node_id in a.p2p.peers)
            for _ in range(1000):
                a.p2p.broadcast(12, b"x")
            await _wait(lambda: a.key.node_id not in b.p2p.peers)
            assert gone == [a.key.node_id]
            assert 200 <= len(b.got) < 1000          # the burst got through, the rest not
            assert b.p2p.banned_for_s(a.key.node_id) > 1.0
            await trio.sleep(0.8)                    # a redials with backoff: refused
            assert a.key.node_id not in b.p2p.peers
            await _wait(lambda: a.key.node_id in b.p2p.peers, 5.0)   # ban over: back
            n.cancel_scope.cancel()
    trio.run(main)


def test_a_peer_the_owner_drops_is_banned_with_growing_bans():
    async def main():
        a, b = _pair(PeerLimits(ban_ms=300, max_ban_ms=1000))
        async with trio.open_nursery() as n:
            await n.start(b.p2p.run)
            await n.start(a.p2p.run)
            lengths = []
            for _ in range(4):
                await _wait(lambda: a.key.node_id in b.p2p.peers and b.key.node_id in a.p2p.peers)
                b.p2p.drop(a.key.node_id, "sent a bad vote")
                lengths.append(round(b.p2p.banned_for_s(a.key.node_id), 1))
                await _wait(lambda: a.key.node_id not in b.p2p.peers)
            assert lengths == [0.3, 0.6, 1.0, 1.0], lengths
            n.cancel_scope.cancel()
    trio.run(main)


def test_slowloris_connections_cannot_lock_an_honest_peer_out():
    """More trickling, never-finishing handshakes than max_handshakes: the oldest are closed,
    and an honest peer still connects."""
    async def main():
        a, b = _pair(PeerLimits(max_handshakes=4))
        socks = []
        async with trio.open_nursery() as n:
            await n.start(b.p2p.run)
            for _ in range(12):
                s = await trio.open_tcp_stream("127.0.0.1", b.port)
                await s.send_all(b"\x00")
                socks.append(s)
            await trio.sleep(0.2)
            assert len(b.p2p.handshakes) <= 4
            await n.start(a.p2p.run)
            await _wait(lambda: a.key.node_id in b.p2p.peers)
            n.cancel_scope.cancel()
        for s in socks:
            await s.aclose()
    trio.run(main)


def test_max_peers_refuses_one_more():
    async def main():
        a, b = _pair(PeerLimits(max_peers=1))
        c = Node(KeyPair.generate())
        b.p2p.allowed |= {c.key.node_id}
        c.p2p.persistent = [b.addr()]
        c.p2p.allowed = {b.key.node_id}
        async with trio.open_nursery() as n:
            await n.start(b.p2p.run)
            await n.start(a.p2p.run)
            await _wait(lambda: a.key.node_id in b.p2p.peers)
            await n.start(c.p2p.run)
            await trio.sleep(0.7)
            assert set(b.p2p.peers) == {a.key.node_id}
            n.cancel_scope.cancel()
    trio.run(main)


def test_garbage_after_the_handshake_bans_the_peer():
    async def main():
        a, b = _pair()
        async with trio.open_nursery() as n:
            await n.start(b.p2p.run)
            await n.start(a.p2p.run)
            await _wait(lambda: a.key.node_id in b.p2p.peers and b.key.node_id in a.p2p.peers)
            peer = a.p2p.peers[b.key.node_id]
            peer.send(b"\x00\x00\x00\x03\xc1\xc1\xc1")   # an undecodable frame
            await _wait(lambda: a.key.node_id not in b.p2p.peers)
            assert b.p2p.banned_for_s(a.key.node_id) > 0
            n.cancel_scope.cancel()
    trio.run(main)


def test_limits_must_be_positive():
    import pytest
    with pytest.raises(ValueError, match="max_peers"):
        PeerLimits(max_peers=0)


def test_p2p_limits_come_from_config(tmp_path):
    import pytest
    from node.config import Config, ConfigError, load_config, render_config
    cfg = Config()
    cfg.p2p.max_msgs_per_s, cfg.p2p.ban_duration = 7, "2s"
    path = tmp_path / "config.toml"
    path.write_text(render_config(cfg))
    limits = PeerLimits.from_config(load_config(path).p2p)
    assert (limits.max_msgs_per_s, limits.ban_ms, limits.max_ban_ms) == (7, 2000, 600_000)
    for bad, match in (('max_peers = 0', "max_peers"), ('ban_duration = "20m"', "ban_duration"),
                       ('ban_duration = "soon"', "duration")):
        key = bad.split(" = ")[0]
        text = "\n".join(f"{bad}" if line.startswith(key + " =") else line
                         for line in render_config(cfg).splitlines())
        path.write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_config(path)


# -- catch-up: which peer a lagging node asks (consensus/driver.py) ---------------------------


def test_sync_asks_in_turn_skips_failing_peers_and_forgets_disconnected_ones(tmp_path):
    """Peers a (height 10), b (8) and a liar (2^63-1) are ahead of a node at height 5.
    The liar never delivers: after one failure it is asked last, even when it repeats its
    claim, and a peer that disconnects is forgotten. Before the fix the node asked the
    highest claim (the liar) every time, and remembered peers after they left."""
    from consensus.driver import (MSG_BLOCKS, MSG_GET_BLOCKS, MSG_STATUS, SYNC_TIMEOUT_S, Driver,
                                  DriverConfig)
    from consensus.rounds import TimeoutConfig
    from consensus.types import ChainTip

    class App:
        tip = ChainTip(5, 0, b"h" * 32, None, b"", b"")

    async def main():
        d = Driver("c", App(), DriverConfig(TimeoutConfig(1, 1, 1, 1, 1, 1), 1, 10, 10),
                   tmp_path / "wal", tmp_path / "signer")
        sent = []

        class Net:
            def send(self, peer, t, body):
                sent.append((peer, t, body))
        d.net = Net()
        d.height, d.height_started_at = 6, trio.current_time()
        d.peer_heights = {"a": 10, "b": 8, "liar": (1 << 63) - 1}
        asked = []
        for _ in range(6):
            d._maybe_sync()
            peer, t, body = sent[-1]
            assert t == MSG_GET_BLOCKS and body[0] == 6 and 1 <= body[1] <= 20
            asked.append(peer)
            if peer == "liar":
                await d._handle("net", "liar", (MSG_BLOCKS, []))   # nothing
                await d._handle("net", "liar", (MSG_STATUS, [(1 << 63) - 1, 0]))  # the lie again
            else:
                d.syncing_from = None   # as if it had delivered
        assert set(asked) == {"a", "b", "liar"} and asked.count("liar") == 1, asked
        # No reply at all within SYNC_TIMEOUT_S counts as a failure too.
        d.peer_heights = {"a": 10, "b": 8}
        d.sync_penalty.clear()
        d._maybe_sync()
        silent = sent[-1][0]
        await trio.sleep(SYNC_TIMEOUT_S + 0.1)
        d._maybe_sync()
        assert sent[-1][0] != silent and d.sync_penalty.get(silent, 0) > trio.current_time()
        # A peer that disconnects is forgotten (and no longer the one being asked).
        other = sent[-1][0]
        await d._handle("disconnect", other, None)
        assert other not in d.peer_heights and d.syncing_from != other
        d.wal.f.close()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
