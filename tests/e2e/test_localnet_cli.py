"""The README's first command as a user types it: `perpchain localnet up` with the default,
relative `.localnet` directory, from the directory the user is in."""

import json
import subprocess
import sys
import time

import pytest

from tests.e2e.conftest import free_base_port

pytestmark = pytest.mark.e2e


def run(cwd, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def test_localnet_up_status_down_with_the_default_relative_dir(tmp_path):
    port = free_base_port(1)
    up = run(tmp_path, "localnet", "up", "-n", "1", "--base-port", str(port), "--no-feeders")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert (tmp_path / ".localnet" / "localnet.json").exists()
        deadline = time.monotonic() + 30
        while True:
            st = run(tmp_path, "localnet", "status")
            assert st.returncode == 0, st.stdout + st.stderr
            row = st.stdout.splitlines()[1].split()
            if row[1] == "running" and row[2].isdigit() and int(row[2]) >= 2:
                break
            assert time.monotonic() < deadline, st.stdout
            time.sleep(0.3)
    finally:
        down = run(tmp_path, "localnet", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    manifest = json.loads((tmp_path / ".localnet" / "localnet.json").read_text())
    assert [n["home"] for n in manifest["nodes"]] == ["node0"]
