import json

import pytest

from node.config import Config, ConfigError, load_config, parse_duration_ms, render_config
from node.genesis import GenesisError, make_genesis_doc, parse_genesis
from node.keys import KeyFileError, KeyPair, load_key, parse_address, save_key


def test_key_roundtrip_and_tamper(tmp_path):
    k = KeyPair.generate()
    f = tmp_path / "k.json"
    save_key(f, k)
    assert load_key(f).pub_key == k.pub_key
    with pytest.raises(FileExistsError):
        save_key(f, KeyPair.generate())
    obj = json.loads(f.read_text())
    obj["address"] = KeyPair.generate().address
    f2 = tmp_path / "k2.json"
    f2.write_text(json.dumps(obj))
    with pytest.raises(KeyFileError, match="address"):
        load_key(f2)
    with pytest.raises(KeyFileError, match="does not exist"):
        load_key(tmp_path / "none.json")


def test_parse_address():
    k = KeyPair.generate()
    assert parse_address(k.address) == k.pub_key == parse_address("0x" + k.address.upper())
    for bad in ("abc", "zz" * 32, k.address + "00"):
        with pytest.raises(ValueError):
            parse_address(bad)


def test_config_roundtrip_and_errors(tmp_path):
    cfg = Config(moniker="n1")
    cfg.consensus.timeout_commit = "100ms"
    f = tmp_path / "config.toml"
    f.write_text(render_config(cfg))
    again = load_config(f)
    assert again == cfg and parse_duration_ms(again.consensus.timeout_commit) == 100
    f.write_text(render_config(cfg) + "\n[mempool]\nsize_typo = 3\n")
    with pytest.raises(ConfigError):
        load_config(f)
    f.write_text(render_config(cfg).replace('timeout_commit = "100ms"', 'timeout_commit = "fast"'))
    with pytest.raises(ConfigError, match="duration"):
        load_config(f)
    assert parse_duration_ms("2s") == 2000 and parse_duration_ms("1m") == 60_000


def test_genesis_validation():
    k = KeyPair.generate()
    doc = make_genesis_doc("c", 1_700_000_000_000, [(k.pub_key, 10, "v")], [(k.pub_key, "5.5")])
    g = parse_genesis(doc)
    assert g.state.balances == ((k.pub_key, "USDC", 5_500_000),)
    assert g.state.validators == ((k.pub_key, 10),)
    for mutate, msg in [
        (lambda d: d.update(chain_id=""), "chain_id"),
        (lambda d: d.update(validators=[]), "no validators"),
        (lambda d: d["app_state"].update(quote_asset="EUR"), "quote asset"),
        (lambda d: d["app_state"]["balances"][0].update(amount="1.0000001"), "decimal places"),
        (lambda d: d.update(genesis_time="yesterday"), "RFC 3339"),
    ]:
        bad = json.loads(json.dumps(doc))
        mutate(bad)
        with pytest.raises(GenesisError, match=msg):
            parse_genesis(bad)
