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
            await _wait(lambda: a.key.node_id in b.p2p.peers)
            a.p2p.broadcast(12, b"x" * 5000)
            await _wait(lambda: a.key.node_id not in b.p2p.peers)
            assert b.got == []
            n.cancel_scope.cancel()
    trio.run(main)


def test_frame_layout():
    f = _pack(12, b"ab")
    assert f[:4] == (len(f) - 4).to_bytes(4, "big")
