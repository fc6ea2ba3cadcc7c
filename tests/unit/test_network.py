"""`perpchain testnet` and the localnet layout: shared genesis, full-mesh peers, own keys."""

import json

from cli.main import main
from node.config import load_config
from node.genesis import load_genesis
from node.home import Home
from node.keys import load_key


def test_testnet_writes_homes_for_several_machines(tmp_path, capsys):
    hosts = ["10.1.0.1", "10.1.0.2", "db.example"]
    args = ["testnet", "--v", "3", "--o", str(tmp_path), "--chain-id", "tn-1"]
    for h in hosts:
        args += ["--hostname", h]
    main(args)
    homes = [Home(tmp_path / f"node{k}") for k in range(3)]
    docs = [json.loads(h.genesis_file.read_text()) for h in homes]
    assert docs[0] == docs[1] == docs[2]
    g = load_genesis(homes[0].genesis_file)
    assert g.chain_id == "tn-1"
    vals = {load_key(h.validator_key_file).pub_key for h in homes}
    assert {v.pub_key for v in g.validators.validators} == vals
    ids = [load_key(h.node_key_file).node_id for h in homes]
    for k, h in enumerate(homes):
        cfg = load_config(h.config_file)
        assert cfg.p2p.laddr == "tcp://0.0.0.0:26656"
        peers = cfg.p2p.persistent_peers.split(",")
        assert sorted(peers) == sorted(f"{ids[j]}@{hosts[j]}:26656" for j in range(3) if j != k)
    assert "node2" in capsys.readouterr().out


def test_testnet_needs_one_hostname_per_validator(tmp_path, capsys):
    import pytest
    with pytest.raises(SystemExit) as e:
        main(["testnet", "--v", "2", "--o", str(tmp_path), "--hostname", "a"])
    assert e.value.code == 2 and "2 --hostname" in capsys.readouterr().err


def test_main_gives_the_callers_sigpipe_handler_back(tmp_path, capsys):
    """main() sets SIGPIPE to its default for `perpchain ... | head`; a caller running it
    in-process (a test runner) gets its own handler back, or a later broken pipe kills it."""
    import signal

    import pytest
    before = signal.getsignal(signal.SIGPIPE)
    with pytest.raises(SystemExit):
        main(["testnet", "--v", "2", "--o", str(tmp_path), "--hostname", "a"])
    assert signal.getsignal(signal.SIGPIPE) == before == signal.SIG_IGN
