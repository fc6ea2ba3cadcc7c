"""The JSON-RPC error code table: stable numbers, never reused or renumbered.

-32700..-32600 are JSON-RPC 2.0's own; -32000 and below are this project's. A tx that
fails its checks is NOT a JSON-RPC error: broadcast methods return it as a result with a
non-zero `code` (see state/errors.py), as CometBFT does.
"""

from enum import IntEnum


class RPCCode(IntEnum):
    PARSE_ERROR = -32700        # body is not JSON
    INVALID_REQUEST = -32600    # not a JSON-RPC 2.0 request object
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    TX_NOT_FOUND = -32001
    HEIGHT_NOT_AVAILABLE = -32002
    TIMEOUT = -32003            # e.g. broadcast_tx_commit saw no block in time
    REQUEST_TOO_LARGE = -32004
    BATCH_TOO_LARGE = -32005
    RATE_LIMITED = -32010       # [rpc] max_requests_per_s_per_ip (HTTP 429)
    SERVER_BUSY = -32011        # [rpc] max_concurrent_requests(_per_ip) (HTTP 503)
    TOO_MUCH_WORK = -32012      # [rpc] max_batch_queries
    SUBSCRIPTION_LIMIT = -32013  # [rpc] ws_max_subscriptions (websocket `subscribe`)


class RPCError(Exception):
    def __init__(self, code: RPCCode, message: str, data: str | None = None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data

    def to_json(self) -> dict:
        err = {"code": int(self.code), "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err
