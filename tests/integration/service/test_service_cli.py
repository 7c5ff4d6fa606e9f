"""``asif-qdrant serve`` as a user runs it: a subprocess on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from click.testing import CliRunner

from asif_qdrant.cli import main
from tests.helpers import precomputed_asif


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_command_serves_the_model_until_interrupted(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with precomputed_asif(path=tmp_path / "m", name="pets", k=3) as asif:
        asif.add_anchor_embeddings(rng.random((6, 8)), rng.random((6, 4)))
        asif.index_embeddings("items", rng.random((4, 8)), "image")
    port = _free_port()
    env = {**os.environ, "MY_KEY": "s3cret-key"}
    cmd = [sys.executable, "-m", "asif_qdrant", "serve", "--path", str(tmp_path / "m")]
    cmd += ["--name", "pets", "--port", str(port), "--api-key-env", "MY_KEY", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url, headers = f"http://127.0.0.1:{port}", {"X-API-Key": "s3cret-key"}
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            try:
                if httpx.get(f"{url}/ready", headers=headers).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.2)
        info = httpx.get(f"{url}/api/model", headers=headers).json()
        assert (info["name"], info["anchor_count"], info["catalogs"]) == ("pets", 6, {"items": 4})
        assert httpx.get(f"{url}/api/model").status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"s3cret-key" not in err
    with precomputed_asif(path=tmp_path / "m", name="pets") as asif:  # the folder is free again
        assert asif.anchor_count == 6


def test_serve_refuses_an_unset_key_variable(tmp_path: Path) -> None:
    env = {"ASIF_UNSET_KEY_VAR": ""}
    result = CliRunner().invoke(
        main, ["serve", "--path", str(tmp_path), "--api-key-env", "ASIF_UNSET_KEY_VAR"], env=env
    )
    assert result.exit_code == 2
    assert "$ASIF_UNSET_KEY_VAR" in result.output and "unset or empty" in result.output
