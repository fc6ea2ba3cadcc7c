"""Peer-to-peer transport: authenticated, framed msgpack over trio TCP.

Frames are a 4-byte big-endian length then a msgpack array [msg_type, body]; a frame
larger than `max_frame` ends the connection. A connection starts with a handshake in
which each side proves it holds its node key:

    -> HELLO  ["perpchain/p2p/1", chain_id, node_pub_key(32), challenge(32 random bytes)]
    <- HELLO  (the same, from the other side)
    -> AUTH   signature by node key over
              encode(["perpchain/p2p-auth/1", chain_id, peer's challenge, own pub key])
    <- AUTH

A peer whose chain id differs, whose node id is neither a persistent peer nor allowed,
whose id differs from the one dialled, or whose signature fails is dropped. When two
nodes dial each other at once, the connection dialled by the lower node id is kept.
Outbound dials to persistent peers retry with exponential backoff.

Each peer has a writer task that drains its queue and coalesces every queued frame into
one write (a burst of votes or a batch of txs costs one syscall). Messages arrive at the
owner through `on_message(peer_id, msg_type, body)`; a handler that raises `Misbehaviour`
gets the peer dropped.
"""

import logging
import os
import struct
from collections import deque
from dataclasses import dataclass
from functools import partial

import msgpack
import trio
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from node.keys import KeyPair, node_id_of

log = logging.getLogger("perpchain.p2p")

HELLO_DOMAIN = "perpchain/p2p/1"
AUTH_DOMAIN = "perpchain/p2p-auth/1"
HANDSHAKE_TIMEOUT_S = 5.0
MAX_BACKOFF_S = 5.0
SEND_QUEUE_FRAMES = 100_000   # a peer that lets this many frames pile up is dropped ...
SEND_QUEUE_BYTES = 128 * 1024 * 1024   # ... or this many bytes
_LEN = struct.Struct(">I")


class Misbehaviour(Exception):
    """A peer sent something it must not: it is disconnected."""


@dataclass(frozen=True)
class PeerAddr:
    node_id: str
    host: str
    port: int

    @staticmethod
    def parse(text: str) -> "PeerAddr":
        """'<node id>@host:port' (CometBFT's persistent_peers form)."""
        try:
            node_id, hostport = text.strip().split("@")
            host, port = hostport.rsplit(":", 1)
            return PeerAddr(node_id.lower(), host, int(port))
        except ValueError:
            raise ValueError(f"peer {text!r} must look like <node id>@host:port") from None

    def __str__(self) -> str:
        return f"{self.node_id}@{self.host}:{self.port}"


def parse_peers(text: str) -> list[PeerAddr]:
    return [PeerAddr.parse(p) for p in text.split(",") if p.strip()]


def _pack(msg_type: int, body) -> bytes:
    payload = msgpack.packb([msg_type, body], use_bin_type=True)
    return _LEN.pack(len(payload)) + payload


class FrameReader:
    def __init__(self, stream: trio.SocketStream, max_frame: int):
        self.stream, self.max_frame = stream, max_frame
        self.buf = bytearray()

    async def next(self):
        """The next [msg_type, body], or None at end of stream."""
        while True:
            if len(self.buf) >= 4:
                (n,) = _LEN.unpack_from(self.buf)
                if n > self.max_frame:
                    raise Misbehaviour(f"frame of {n} bytes exceeds {self.max_frame}")
                if len(self.buf) >= 4 + n:
                    payload = bytes(self.buf[4:4 + n])
                    del self.buf[:4 + n]
                    try:
                        msg = msgpack.unpackb(payload, raw=False, use_list=True)
                    except (ValueError, msgpack.UnpackException) as e:
                        raise Misbehaviour(f"undecodable frame: {e}") from None
                    if type(msg) is not list or len(msg) != 2 or type(msg[0]) is not int:
                        raise Misbehaviour("frame is not [msg_type, body]")
                    return msg
            data = await self.stream.receive_some(1 << 20)
            if not data:
                return None
            self.buf += data


class Peer:
    def __init__(self, node_id: str, stream: trio.SocketStream, dialer_id: str, outbound: bool):
        self.node_id, self.stream, self.dialer_id, self.outbound = node_id, stream, dialer_id, outbound
        self.queue: deque[bytes] = deque()
        self.queued_bytes = 0
        self.wakeup = trio.Event()
        self.closed = False
        self.cancel_scope: trio.CancelScope | None = None

    def send(self, frame: bytes) -> None:
        if self.closed:
            return
        if len(self.queue) >= SEND_QUEUE_FRAMES or self.queued_bytes > SEND_QUEUE_BYTES:
            log.warning("peer %s is not reading: dropping it", self.node_id[:12])
            self.close()
            return
        self.queue.append(frame)
        self.queued_bytes += len(frame)
        self.wakeup.set()

    def close(self) -> None:
        self.closed = True
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()

    async def writer(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup = trio.Event()
            if not self.queue:
                continue
            frames = b"".join(self.queue)
            self.queue.clear()
            self.queued_bytes = 0
            await self.stream.send_all(frames)


class P2P:
    def __init__(self, node_key: KeyPair, chain_id: str, listen: tuple[str, int],
                 persistent_peers: list[PeerAddr], on_message, on_connect=None,
                 allowed_ids: tuple[str, ...] = (), max_frame: int = 32 * 1024 * 1024):
        self.key, self.chain_id, self.listen = node_key, chain_id, listen
        self.node_id = node_key.node_id
        self.persistent = persistent_peers
        self.allowed = {p.node_id for p in persistent_peers} | set(allowed_ids)
        self.on_message, self.on_connect = on_message, on_connect
        self.max_frame = max_frame
        self.peers: dict[str, Peer] = {}

    # -- public ----------------------------------------------------------------------------
    def broadcast(self, msg_type: int, body, exclude: str | None = None) -> None:
        if not self.peers:
            return  # a lone node: do not pack frames nobody reads
        frame = _pack(msg_type, body)
        for pid, peer in list(self.peers.items()):
            if pid != exclude:
                peer.send(frame)

    def send(self, peer_id: str, msg_type: int, body) -> None:
        peer = self.peers.get(peer_id)
        if peer is not None:
            peer.send(_pack(msg_type, body))

    def drop(self, peer_id: str, why: str) -> None:
        peer = self.peers.get(peer_id)
        if peer is not None:
            log.warning("dropping peer %s: %s", peer_id[:12], why)
            peer.close()

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                partial(trio.serve_tcp, self._inbound, self.listen[1], host=self.listen[0]))
            for addr in self.persistent:
                if addr.node_id != self.node_id:
                    nursery.start_soon(self._dial_loop, addr)
            task_status.started(listeners)

    # -- connections -------------------------------------------------------------------------
    async def _inbound(self, stream: trio.SocketStream) -> None:
        try:
            peer_id, reader = await self._handshake(stream, expected=None)
        except (Misbehaviour, trio.BrokenResourceError, trio.ClosedResourceError,
                trio.TooSlowError, OSError) as e:
            log.info("inbound handshake failed: %s", e)
            await trio.aclose_forcefully(stream)
            return
        await self._serve(Peer(peer_id, stream, dialer_id=peer_id, outbound=False), reader)

    async def _dial_loop(self, addr: PeerAddr) -> None:
        backoff = 0.1
        while True:
            if addr.node_id not in self.peers:
                try:
                    stream = await trio.open_tcp_stream(addr.host, addr.port)
                except OSError:
                    stream = None
                if stream is not None:
                    try:
                        peer_id, reader = await self._handshake(stream, expected=addr.node_id)
                    except (Misbehaviour, trio.BrokenResourceError, trio.ClosedResourceError,
                            trio.TooSlowError, OSError) as e:
                        log.info("handshake with %s failed: %s", addr, e)
                        await trio.aclose_forcefully(stream)
                    else:
                        backoff = 0.1
                        await self._serve(Peer(peer_id, stream, dialer_id=self.node_id,
                                               outbound=True), reader)
            await trio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _handshake(self, stream: trio.SocketStream,
                         expected: str | None) -> tuple[str, FrameReader]:
        """(peer node id, the reader, holding any frames that followed the handshake)."""
        reader = FrameReader(stream, 4096)  # handshake frames are small
        challenge = os.urandom(32)
        with trio.fail_after(HANDSHAKE_TIMEOUT_S):
            await stream.send_all(_pack(0, [HELLO_DOMAIN, self.chain_id, self.key.pub_key,
                                            challenge]))
            hello = await reader.next()
            if hello is None or hello[0] != 0 or type(hello[1]) is not list or len(hello[1]) != 4:
                raise Misbehaviour("bad hello")
            domain, chain_id, peer_pub, peer_challenge = hello[1]
            if domain != HELLO_DOMAIN or chain_id != self.chain_id:
                raise Misbehaviour(f"peer is on chain {chain_id!r}, not {self.chain_id!r}")
            if type(peer_pub) is not bytes or len(peer_pub) != 32 or \
                    type(peer_challenge) is not bytes or len(peer_challenge) != 32:
                raise Misbehaviour("bad hello fields")
            peer_id = node_id_of(peer_pub)
            if expected is not None and peer_id != expected:
                raise Misbehaviour(f"dialled {expected[:12]} but {peer_id[:12]} answered")
            if peer_id not in self.allowed or peer_id == self.node_id:
                raise Misbehaviour(f"unknown peer {peer_id}")
            sig = self.key.private.sign(msgpack.packb(
                [AUTH_DOMAIN, self.chain_id, peer_challenge, self.key.pub_key], use_bin_type=True))
            await stream.send_all(_pack(1, sig))
            auth = await reader.next()
            if auth is None or auth[0] != 1 or type(auth[1]) is not bytes:
                raise Misbehaviour("bad auth")
            try:
                Ed25519PublicKey.from_public_bytes(peer_pub).verify(auth[1], msgpack.packb(
                    [AUTH_DOMAIN, self.chain_id, challenge, peer_pub], use_bin_type=True))
            except (InvalidSignature, ValueError):
                raise Misbehaviour("peer failed to prove its node key") from None
        reader.max_frame = self.max_frame
        return peer_id, reader

    def _keep(self, new: Peer) -> bool:
        """Register `new` unless a connection to that peer exists that wins the tie-break."""
        old = self.peers.get(new.node_id)
        if old is None or old.closed:
            self.peers[new.node_id] = new
            return True
        # Simultaneous dials: both sides keep the connection dialled by the lower node id,
        # which each of them can tell without asking the other.
        preferred = min(self.node_id, new.node_id)
        if new.dialer_id == preferred and old.dialer_id != preferred:
            old.close()
            self.peers[new.node_id] = new
            return True
        return False

    async def _read(self, peer: Peer, reader: FrameReader) -> None:
        """Deliver frames until the peer hangs up, breaks a rule or the link fails."""
        try:
            while True:
                msg = await reader.next()
                if msg is None:
                    return
                self.on_message(peer.node_id, msg[0], msg[1])
        except Misbehaviour as e:
            log.warning("peer %s misbehaved: %s", peer.node_id[:12], e)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            log.info("peer %s connection lost: %s", peer.node_id[:12], e)

    async def _write(self, peer: Peer, scope: trio.CancelScope) -> None:
        try:
            await peer.writer()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            log.info("peer %s connection lost while sending: %s", peer.node_id[:12], e)
            scope.cancel()

    async def _serve(self, peer: Peer, reader: FrameReader) -> None:
        if not self._keep(peer):
            await trio.aclose_forcefully(peer.stream)
            return
        log.info("peer %s connected (%s)", peer.node_id[:12], "out" if peer.outbound else "in")
        try:
            with trio.CancelScope() as scope:
                peer.cancel_scope = scope
                if peer.closed:
                    scope.cancel()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write, peer, scope)
                    if self.on_connect is not None:
                        self.on_connect(peer.node_id)
                    await self._read(peer, reader)
                    nursery.cancel_scope.cancel()
        finally:
            peer.closed = True
            if self.peers.get(peer.node_id) is peer:
                del self.peers[peer.node_id]
            await trio.aclose_forcefully(peer.stream)
            log.info("peer %s disconnected", peer.node_id[:12])
