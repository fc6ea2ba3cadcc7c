"""Admission limits of the JSON-RPC server: requests in flight (in all, per client IP) and
a per-IP request rate. The limits come from [rpc] in config.toml (node/config.py); a
refused request gets its own JSON-RPC error (rpc/errors.py) and HTTP status. Time is
time.monotonic(), in seconds (not trio's clock: each trio.run has its own origin)."""

import time
from collections import OrderedDict
from dataclasses import dataclass

from rpc.errors import RPCCode, RPCError

MAX_TRACKED_IPS = 10_000   # buckets kept; the least recently seen IP is forgotten first


@dataclass
class _Bucket:
    tokens: float
    at_s: float


class Admission:
    """Admit or refuse one HTTP request; `release` it when answered."""

    def __init__(self, max_concurrent: int, max_concurrent_per_ip: int, rate_per_s: int):
        self.max_concurrent, self.max_per_ip = max_concurrent, max_concurrent_per_ip
        self.rate_per_s = rate_per_s
        self.in_flight = 0
        self.per_ip: dict[str, int] = {}
        self.buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def admit(self, ip: str) -> None:
        """Raise RPCError (with the limit named) unless the request may run now."""
        self._take_token(ip)
        if self.in_flight >= self.max_concurrent:
            raise RPCError(RPCCode.SERVER_BUSY, f"the node is already answering "
                           f"{self.in_flight} requests (limit [rpc] max_concurrent_requests = "
                           f"{self.max_concurrent}); retry shortly")
        n = self.per_ip.get(ip, 0)
        if n >= self.max_per_ip:
            raise RPCError(RPCCode.SERVER_BUSY, f"{n} requests from {ip} are already in "
                           f"progress (limit [rpc] max_concurrent_requests_per_ip = "
                           f"{self.max_per_ip}); wait for their answers")
        self.in_flight += 1
        self.per_ip[ip] = n + 1

    def release(self, ip: str) -> None:
        self.in_flight -= 1
        n = self.per_ip.pop(ip) - 1
        if n:
            self.per_ip[ip] = n

    def _take_token(self, ip: str) -> None:
        if not self.rate_per_s:
            return
        now = time.monotonic()
        b = self.buckets.pop(ip, None) or _Bucket(float(self.rate_per_s), now)
        b.tokens = min(float(self.rate_per_s), b.tokens + max(0.0, now - b.at_s) * self.rate_per_s)
        b.at_s = now
        self.buckets[ip] = b
        if len(self.buckets) > MAX_TRACKED_IPS:
            self.buckets.popitem(last=False)
        if b.tokens < 1:
            raise RPCError(RPCCode.RATE_LIMITED, f"too many requests from {ip}: the limit is "
                           f"[rpc] max_requests_per_s_per_ip = {self.rate_per_s}; slow down")
        b.tokens -= 1
