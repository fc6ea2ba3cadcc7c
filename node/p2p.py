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
owner through `on_message(peer_id, msg_type, body)`; `on_connect(peer_id)` and
`on_disconnect(peer_id)` tell it when a peer comes and goes.

Limits (`PeerLimits`, from config.toml [p2p]), each enforced with a logged disconnect:
a frame above `max_frame_bytes`; more than `max_msgs_per_s` messages a second from one
peer (beyond a burst of `max_msgs_burst`); more than `max_peers` connected peers; more than
`max_handshakes` unauthenticated connections at once (the oldest is closed to make room:
sockets that trickle a byte a second cannot lock honest peers out), each of which must
finish its handshake within HANDSHAKE_TIMEOUT_S. A peer that misbehaves (an undecodable
or oversized frame, a flood, or a message the owner rejects through `drop`) is
disconnected and banned: `ban_ms` for its first offence, doubling with each further one
up to `max_ban_ms`; a banned peer is neither dialled nor let in until its ban ends.
"""

import logging
import os
import struct
from collections import deque
from dataclasses import dataclass, field
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
    """A peer sent something it must not: it is disconnected (and banned for a while)."""


@dataclass(frozen=True)
class PeerLimits:
    """What one node allows its peers (defaults: docs/OPERATIONS.md, config [p2p])."""
    max_frame_bytes: int = 32 * 1024 * 1024
    max_msgs_per_s: int = 1000
    max_msgs_burst: int = 10_000
    max_peers: int = 50
    max_handshakes: int = 16
    ban_ms: int = 10_000
    max_ban_ms: int = 600_000

    @staticmethod
    def from_config(p2p) -> "PeerLimits":
        """From config.toml's [p2p] section (node.config.P2PConfig)."""
        from node.config import parse_duration_ms
        return PeerLimits(p2p.max_frame_bytes, p2p.max_msgs_per_s, p2p.max_msgs_burst,
                          p2p.max_peers, p2p.max_handshakes, parse_duration_ms(p2p.ban_duration),
                          parse_duration_ms(p2p.max_ban_duration))

    def __post_init__(self):
        for f, v in self.__dict__.items():
            if type(v) is not int or v < 1:
                raise ValueError(f"p2p limit {f} must be a positive integer, not {v!r}")


@dataclass
class Offences:
    """A peer's misbehaviour record: how often, and until when it is banned."""
    count: int = 0
    banned_until_s: float = field(default=0.0)


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
                 allowed_ids: tuple[str, ...] = (), max_frame: int | None = None,
                 limits: PeerLimits | None = None, on_disconnect=None):
        self.key, self.chain_id, self.listen = node_key, chain_id, listen
        self.node_id = node_key.node_id
        self.persistent = persistent_peers
        self.allowed = {p.node_id for p in persistent_peers} | set(allowed_ids)
        self.on_message, self.on_connect = on_message, on_connect
        self.on_disconnect = on_disconnect
        self.limits = limits or PeerLimits()
        self.max_frame = max_frame if max_frame is not None else self.limits.max_frame_bytes
        self.peers: dict[str, Peer] = {}
        self.offences: dict[str, Offences] = {}
        self.handshakes: list[trio.CancelScope] = []   # inbound, oldest first

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
        """The owner found `peer_id` misbehaving: disconnect and ban it for a while."""
        self.punish(peer_id, why)
        peer = self.peers.get(peer_id)
        if peer is not None:
            peer.close()

    def punish(self, peer_id: str, why: str) -> None:
        now = trio.current_time()
        o = self.offences.setdefault(peer_id, Offences())
        if now - o.banned_until_s > self.limits.max_ban_ms / 1000:
            o.count = 0   # well behaved for long after its last ban: start over
        o.count += 1
        ban_ms = min(self.limits.ban_ms << min(o.count - 1, 30), self.limits.max_ban_ms)
        o.banned_until_s = max(o.banned_until_s, now + ban_ms / 1000)
        log.warning("dropping peer %s and banning it for %.1fs (offence %d): %s",
                    peer_id[:12], ban_ms / 1000, o.count, why)

    def banned_for_s(self, peer_id: str) -> float:
        """Seconds left of `peer_id`'s ban (0 if none)."""
        o = self.offences.get(peer_id)
        return 0.0 if o is None else max(0.0, o.banned_until_s - trio.current_time())

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
        if len(self.handshakes) >= self.limits.max_handshakes:
            log.info("%d handshakes in progress: closing the oldest", len(self.handshakes))
            self.handshakes.pop(0).cancel()
        result = None
        with trio.CancelScope() as scope:
            self.handshakes.append(scope)
            try:
                result = await self._handshake(stream, expected=None)
            except (Misbehaviour, trio.BrokenResourceError, trio.ClosedResourceError,
                    trio.TooSlowError, OSError) as e:
                log.info("inbound handshake failed: %s", e)
            finally:
                if scope in self.handshakes:
                    self.handshakes.remove(scope)
        if result is None:
            await trio.aclose_forcefully(stream)
            return
        peer_id, reader = result
        await self._serve(Peer(peer_id, stream, dialer_id=peer_id, outbound=False), reader)

    async def _dial_loop(self, addr: PeerAddr) -> None:
        backoff = 0.1
        while True:
            ban_s = self.banned_for_s(addr.node_id)
            if ban_s > 0:
                await trio.sleep(ban_s)
                continue
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
            if self.banned_for_s(peer_id) > 0:
                raise Misbehaviour(f"peer {peer_id[:12]} is banned for another "
                                   f"{self.banned_for_s(peer_id):.1f}s")
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
            live = sum(1 for p in self.peers.values() if not p.closed)
            if old is None and live >= self.limits.max_peers:
                log.warning("refusing peer %s: %d peers connected (max_peers)",
                            new.node_id[:12], live)
                return False
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
        rate, burst = self.limits.max_msgs_per_s, self.limits.max_msgs_burst
        tokens, last = float(burst), trio.current_time()
        try:
            while True:
                msg = await reader.next()
                if msg is None:
                    return
                now = trio.current_time()
                tokens = min(float(burst), tokens + (now - last) * rate)
                last = now
                if tokens < 1.0:
                    raise Misbehaviour(f"flood: more than {rate} messages/s "
                                       f"(beyond a burst of {burst})")
                tokens -= 1.0
                self.on_message(peer.node_id, msg[0], msg[1])
        except Misbehaviour as e:
            self.punish(peer.node_id, str(e))
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
                if self.on_disconnect is not None:
                    self.on_disconnect(peer.node_id)
            await trio.aclose_forcefully(peer.stream)
            log.info("peer %s disconnected", peer.node_id[:12])
