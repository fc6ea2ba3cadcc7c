"""Ed25519 key files: account keys, the validator key and the node (p2p) key.

Files follow CometBFT's JSON shape so operators recognise them:
    {"address": "<hex of the 32-byte public key>",
     "pub_key":  {"type": "tendermint/PubKeyEd25519",  "value": "<base64 32 bytes>"},
     "priv_key": {"type": "tendermint/PrivKeyEd25519", "value": "<base64 seed||pub, 64 bytes>"}}
The address of an account is its public key in hex. Files are written
with mode 0600 and never overwritten; loading one that other users can read logs a warning
naming it.
"""

import base64
import hashlib
import json
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PUB_TYPE = "tendermint/PubKeyEd25519"
PRIV_TYPE = "tendermint/PrivKeyEd25519"


log = logging.getLogger("perpchain.keys")


class KeyFileError(Exception):
    pass


def warn_if_exposed(path: Path) -> None:
    """Log a warning if users other than the owner may read or write the key file."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return
    if mode & 0o077:
        log.warning("key file %s has mode %o: other users can read it; run `chmod 600 %s`",
                    path, mode, path)


def node_id_of(pub_key: bytes) -> str:
    """CometBFT node id: hex of the first 20 bytes of sha256(public key)."""
    return hashlib.sha256(pub_key).digest()[:20].hex()


@dataclass(frozen=True)
class KeyPair:
    private: Ed25519PrivateKey
    pub_key: bytes

    @property
    def address(self) -> str:
        return self.pub_key.hex()

    @property
    def node_id(self) -> str:
        return node_id_of(self.pub_key)

    @staticmethod
    def generate() -> "KeyPair":
        return KeyPair.from_seed(os.urandom(32))

    @staticmethod
    def from_seed(seed: bytes) -> "KeyPair":
        priv = Ed25519PrivateKey.from_private_bytes(seed)
        pub = priv.public_key().public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)
        return KeyPair(priv, pub)

    def seed(self) -> bytes:
        return self.private.private_bytes(serialization.Encoding.Raw,
                                          serialization.PrivateFormat.Raw,
                                          serialization.NoEncryption())

    def to_json(self) -> dict:
        return {
            "address": self.address,
            "pub_key": {"type": PUB_TYPE, "value": base64.b64encode(self.pub_key).decode()},
            "priv_key": {"type": PRIV_TYPE,
                         "value": base64.b64encode(self.seed() + self.pub_key).decode()},
        }


def save_key(path: Path, key: KeyPair) -> None:
    """Write a new key file with mode 0600; refuse to overwrite an existing one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(key.to_json(), f, indent=2)
        f.write("\n")


def load_key(path: Path) -> KeyPair:
    """A key file's key pair; KeyFileError naming the file for anything malformed."""
    try:
        obj = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    except OSError as e:
        raise KeyFileError(f"cannot read key file {path}: {e.strerror or e}") from None
    except (ValueError, RecursionError) as e:   # not UTF-8 or not JSON
        raise KeyFileError(f"{path} is not a perpchain key file: {e}") from None
    warn_if_exposed(Path(path))
    if not isinstance(obj, dict):
        raise KeyFileError(f"{path} is not a perpchain key file: not a JSON object")
    raw = _b64_field(path, obj, "priv_key", required=True)
    if len(raw) not in (32, 64):
        raise KeyFileError(f"{path}: private key must be 32 or 64 bytes, got {len(raw)}")
    key = KeyPair.from_seed(raw[:32])
    if len(raw) == 64 and raw[32:] != key.pub_key:
        raise KeyFileError(f"{path}: public half does not match the private key")
    if obj.get("address", key.address) != key.address:
        raise KeyFileError(f"{path}: address does not match the private key")
    pub = _b64_field(path, obj, "pub_key", required=False)
    if pub and pub != key.pub_key:
        raise KeyFileError(f"{path}: pub_key does not match the private key")
    return key


def _b64_field(path: Path, obj: dict, name: str, required: bool) -> bytes:
    """obj[name]["value"] decoded from base64 (b"" if absent and not required)."""
    field = obj.get(name)
    if field is None and not required:
        return b""
    value = field.get("value") if isinstance(field, dict) else None
    if not isinstance(value, str):
        raise KeyFileError(f"{path}: {name}.value must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise KeyFileError(f"{path}: {name}.value is not base64") from None


def parse_address(text: str) -> bytes:
    """An account address: 64 hex chars (an optional 0x prefix is accepted)."""
    t = text.strip().lower()
    if t.startswith("0x"):
        t = t[2:]
    if len(t) != 64:
        raise ValueError(f"address must be 64 hex characters (32 bytes), got {len(t)}")
    try:
        return bytes.fromhex(t)
    except ValueError:
        raise ValueError(f"address {text!r} is not hex") from None
