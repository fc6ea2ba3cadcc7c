"""A node's home directory, laid out as CometBFT's:

    HOME/config/config.toml  genesis.json  priv_validator_key.json  node_key.json
    HOME/data/perpchain.db   (LevelDB: state, blocks, results, tx index)
"""

from dataclasses import dataclass
from pathlib import Path

from node.config import Config, render_config
from node.genesis import make_genesis_doc, save_genesis
from node.keys import KeyPair, save_key


@dataclass(frozen=True)
class Home:
    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def genesis_file(self) -> Path:
        return self.config_dir / "genesis.json"

    @property
    def validator_key_file(self) -> Path:
        return self.config_dir / "priv_validator_key.json"

    @property
    def node_key_file(self) -> Path:
        return self.config_dir / "node_key.json"

    @property
    def db_path(self) -> Path:
        return self.root / "data" / "perpchain.db"


def init_home(root: Path, chain_id: str, genesis_time_ms: int, cfg: Config | None = None,
              genesis_doc: dict | None = None) -> tuple[Home, KeyPair]:
    """Create keys, config.toml and (unless given) a single-validator genesis.json."""
    home = Home(Path(root))
    if home.config_file.exists():
        raise FileExistsError(f"{home.config_file} already exists; refusing to overwrite")
    # Keys and chain data are the operator's alone (CometBFT uses 0700 too).
    for d in (home.config_dir, home.root / "data"):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o700)
    val_key, node_key = KeyPair.generate(), KeyPair.generate()
    save_key(home.validator_key_file, val_key)
    save_key(home.node_key_file, node_key)
    cfg = cfg or Config(moniker=home.root.name)
    home.config_file.write_text(render_config(cfg))
    if genesis_doc is None:
        genesis_doc = make_genesis_doc(chain_id, genesis_time_ms, [(val_key.pub_key, 10, cfg.moniker)])
    save_genesis(home.genesis_file, genesis_doc)
    return home, val_key
