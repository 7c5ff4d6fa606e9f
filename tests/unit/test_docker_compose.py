"""docker/compose.yaml: valid for docker-compose, pinned like the tests, a working health check.

No Docker daemon is needed: Debian's docker-compose 1.29 validates and renders the file offline,
and the health check's shell command is run here against a small HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from asif_qdrant.store.client import QDRANT_IMAGE

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read docker/compose.yaml")

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"
DOCKER_COMPOSE = shutil.which("docker-compose")
needs_compose = pytest.mark.skipif(
    DOCKER_COMPOSE is None,
    reason="docker-compose is not installed: apt-get install -y docker-compose (Debian's 1.29 "
    "validates the file offline, no daemon needed)",
)


def render(tmp_path: Path, **env: str) -> dict[str, Any]:
    """``docker-compose config`` with only the given variables (no docker/.env of the user)."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("QDRANT_", "COMPOSE_"))}
    args = [DOCKER_COMPOSE, "-f", str(COMPOSE), "--env-file", str(env_file), "config"]
    quiet = subprocess.run(
        [*args, "-q"], env={**clean, **env}, capture_output=True, text=True, timeout=120
    )
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == ""
    full = subprocess.run(args, env={**clean, **env}, capture_output=True, text=True, timeout=120)
    assert full.returncode == 0, full.stderr
    return yaml.safe_load(full.stdout)


@needs_compose
def test_compose_file_validates_and_renders(tmp_path: Path) -> None:
    cfg = render(tmp_path)
    q = cfg["services"]["qdrant"]
    assert q["image"] == QDRANT_IMAGE  # the image the server leg of the tests starts
    assert {(p["published"], p["target"]) for p in q["ports"]} == {(6333, 6333), (6334, 6334)}
    assert "qdrant-storage:/qdrant/storage:rw" in q["volumes"]
    assert "qdrant-storage" in cfg["volumes"]
    assert "/readyz" in " ".join(q["healthcheck"]["test"])
    assert q["environment"]["QDRANT__SERVICE__API_KEY"] == ""  # no key unless one is given
    nodes = [f"qdrant-node-{i}" for i in range(3)]
    assert all(
        cfg["services"][n]["environment"]["QDRANT__CLUSTER__ENABLED"] == "true" for n in nodes
    )
    for n in nodes[1:]:
        cmd = cfg["services"][n]["command"]
        assert cmd[cmd.index("--bootstrap") + 1] == "http://qdrant-node-0:6335"
        assert cfg["services"][n]["depends_on"]["qdrant-node-0"]["condition"] == "service_healthy"


@needs_compose
def test_api_key_version_and_ports_come_from_the_environment(tmp_path: Path) -> None:
    cfg = render(
        tmp_path, QDRANT_API_KEY="k-123", QDRANT_VERSION="v1.18.3", QDRANT_REST_PORT="7333"
    )
    q = cfg["services"]["qdrant"]
    assert q["environment"]["QDRANT__SERVICE__API_KEY"] == "k-123"
    assert cfg["services"]["qdrant-node-2"]["environment"]["QDRANT__SERVICE__API_KEY"] == "k-123"
    assert q["image"] == "qdrant/qdrant:v1.18.3"
    assert (7333, 6333) in {(p["published"], p["target"]) for p in q["ports"]}


def test_pinned_version_matches_the_tests_and_the_env_example() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    image = raw["x-qdrant"]["image"]
    repo, _, tag = image.partition(":")
    default = tag.removeprefix("${QDRANT_VERSION:-").removesuffix("}")
    assert f"{repo}:{default}" == QDRANT_IMAGE
    example = dict(
        line.split("=", 1)
        for line in (ROOT / "docker" / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert f"qdrant/qdrant:{example['QDRANT_VERSION']}" == QDRANT_IMAGE
    assert example["QDRANT_API_KEY"] == ""


class _Ready(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/readyz" else 404
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def ready_server() -> Iterator[tuple[ThreadingHTTPServer, type[_Ready]]]:
    handler = type("Handler", (_Ready,), {})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield srv, handler
    srv.shutdown()
    srv.server_close()


@pytest.mark.skipif(shutil.which("bash") is None, reason="the health check is a bash command")
def test_health_check_command_asks_readyz(ready_server) -> None:
    srv, handler = ready_server
    test = yaml.safe_load(COMPOSE.read_text())["x-qdrant"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"]
    script = test[3].replace("6333", str(srv.server_address[1]))

    def run() -> int:
        return subprocess.run(["bash", "-c", script], capture_output=True, timeout=30).returncode

    handler.status = 200
    assert run() == 0
    handler.status = 503  # Qdrant's answer while shards are loading
    assert run() != 0
    port = srv.server_address[1]
    srv.shutdown()
    srv.server_close()
    script_closed = test[3].replace("6333", str(port))
    closed = subprocess.run(["bash", "-c", script_closed], capture_output=True, timeout=30)
    assert closed.returncode != 0
