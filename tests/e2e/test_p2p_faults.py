"""Process faults around a node's sockets, on real processes (issue 8, items 1 and 2).

* Clients that hang up mid-request (a `broadcast_tx_commit` abandoned after 50 ms, a batch
  of 2,000 `status` calls whose socket is closed unread) must not kill the node: before
  the fix SIGPIPE's default action ended `perpchain start` without a log line.
* A raw, unauthenticated socket on the p2p port that sends one byte a second (slowloris)
  or garbage must not stop the chain.
"""

import base64
import json
import socket
import time

from node.keys import KeyPair


def _post(port: int, body: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return s


def _hang_up(s: socket.socket, reset: bool) -> None:
    if reset:   # RST instead of FIN: the node's next write fails at once
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()


def _wait_height(client, above: int, timeout_s: float = 20.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        h = client.height()
        if h > above:
            return h
        time.sleep(0.1)
    raise AssertionError(f"chain did not pass height {above} within {timeout_s}s")


def _rpc_port(net) -> int:
    return int(net.url.rsplit(":", 1)[1].strip("/"))


def test_clients_hanging_up_mid_request_do_not_kill_the_node(net):
    client = net.client()
    h0 = _wait_height(client, 0)
    port = _rpc_port(net)
    pid = net.node.pid()
    batch = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "status"}
                        for i in range(2000)]).encode()
    for i in range(30):
        s = _post(port, batch)
        time.sleep(0.02)   # the node is busy writing a large reply ...
        _hang_up(s, reset=i % 2 == 0)   # ... to a socket that is gone
    key = KeyPair.generate()
    signer = net.client(key)
    for i in range(10):
        raw = signer.sign(["faucet"]) if i == 0 else signer.sign(["transfer", key.pub_key,
                                                                   "USDC", 1])
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "broadcast_tx_commit",
                           "params": {"tx": base64.b64encode(raw).decode()}}).encode()
        s = _post(port, body)
        time.sleep(0.05)   # curl -m 0.05
        _hang_up(s, reset=i % 2 == 1)
    time.sleep(1.0)        # the abandoned commits complete and write their replies
    assert net.node.pid() == pid, "the node process died"
    h1 = _wait_height(client, h0 + 3)
    assert h1 > h0 + 3
    log = net.node.log_file.read_text()
    assert "CRITICAL" not in log, log[-3000:]


def test_slowloris_and_garbage_on_the_p2p_port_do_not_stop_the_chain(net):
    client = net.client()
    h0 = _wait_height(client, 0)
    p2p_port = _rpc_port(net) - 1
    slow = [socket.create_connection(("127.0.0.1", p2p_port), timeout=5) for _ in range(20)]
    t_end = time.monotonic() + 4.0
    while time.monotonic() < t_end:
        for s in slow:
            try:
                s.send(b"\x00")   # one byte a second: the handshake timeout ends it
            except OSError:
                pass
        g = socket.create_connection(("127.0.0.1", p2p_port), timeout=5)
        g.sendall(b"\xff\xff\xff\xff" + b"garbage" * 100)
        _hang_up(g, reset=True)
        time.sleep(1.0)
    h1 = _wait_height(client, h0 + 3)
    assert h1 > h0 + 3
    for s in slow:
        s.close()


def test_a_validator_stopped_and_resumed_rejoins_and_no_node_dies(net4):
    """SIGSTOP one of 4 validators for 6 s (its peers' writes to it pile up, its sockets
    stall), then SIGCONT: the other three keep committing meanwhile, the stopped one catches
    up, and every process is still alive with no fatal line in its log (before the SIGPIPE
    fix this cascaded into dead validators)."""
    import os
    import signal
    clients = [net4.client(k=i) for i in range(4)]
    _wait_height(clients[0], 2, 40.0)
    pids = [e.pid() for e in net4.entries]
    os.kill(pids[1], signal.SIGSTOP)
    try:
        h = clients[0].height()
        _wait_height(clients[0], h + 3, 30.0)    # three of four: still a quorum
        time.sleep(3.0)
    finally:
        os.kill(pids[1], signal.SIGCONT)
    top = max(c.height() for c in (clients[0], clients[2], clients[3]))
    _wait_height(clients[1], top, 40.0)          # caught up
    _wait_height(clients[0], top + 2, 30.0)      # and the chain goes on with it
    assert [e.pid() for e in net4.entries] == pids, "a node process died"
    for e in net4.entries:
        assert "CRITICAL" not in e.log_file.read_text()


def test_an_authenticated_peer_sending_bad_messages_is_banned_and_the_node_lives(tmp_path):
    """A peer the node lets in (its id in allowed_peer_ids) sends GET_BLOCKS [-1, 1] (before
    the fix: OverflowError, node dead), then keeps redialling: it is dropped, banned (its
    redials refused) and the node keeps committing."""
    import trio

    from node.home import Home
    from node.keys import load_key
    from node.p2p import P2P, PeerAddr
    from tests.e2e.conftest import Net

    attacker = KeyPair.generate()
    net = Net(tmp_path / "ln", 1,
              configure=lambda cfg: setattr(cfg.p2p, "allowed_peer_ids", attacker.node_id))
    try:
        client = net.client()
        h0 = _wait_height(client, 1)
        node_id = load_key(Home(net.node.home).node_key_file).node_id
        port = _rpc_port(net) - 1
        seen = {"connected": 0}

        async def attack():
            got = []
            p2p = P2P(attacker, client.chain_id, ("127.0.0.1", 0),
                      [PeerAddr(node_id, "127.0.0.1", port)], lambda *m: got.append(m))
            async with trio.open_nursery() as n:
                n.start_soon(p2p._dial_loop, p2p.persistent[0])
                with trio.fail_after(10):
                    while node_id not in p2p.peers:
                        await trio.sleep(0.05)
                seen["connected"] += 1
                p2p.send(node_id, 14, [-1, 1])
                with trio.fail_after(10):
                    while node_id in p2p.peers:
                        await trio.sleep(0.05)
                await trio.sleep(2.0)    # it redials (backoff 0.1 s ...): refused, banned
                seen["reconnected"] = node_id in p2p.peers
                n.cancel_scope.cancel()

        trio.run(attack)
        assert seen == {"connected": 1, "reconnected": False}
        _wait_height(client, h0 + 3)
        log = net.node.log_file.read_text()
        assert "banning it" in log and "get_blocks from height" in log, log[-2000:]
        assert "CRITICAL" not in log
    finally:
        net.down()
