"""Fast commands: each loads only the encoder it needs, says so once, and times itself with -v.

Every command runs in a fresh process (``python -c`` running the click group, then printing
which heavy modules it imported), on a model named after the real offline encoders but built
from random embeddings: opening it loads nothing, so what a command imports is its own doing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asif_qdrant import ASIF
from asif_qdrant.encoders import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER
from asif_qdrant.encoders.offline import offline_package_available
from asif_qdrant.errors import FingerprintMismatchError
from tests.integration.conftest import STAMP_PATHS

pytestmark = pytest.mark.integration

HEAVY = ("torch", "timm", "torchvision", "sentence_transformers", "transformers")
#: Runs the command line on argv, then prints the heavy modules it imported as JSON on stderr.
WRAPPER = (
    "import atexit, json, sys\n"
    "atexit.register(lambda: print('MODULES=' + json.dumps(sorted(m for m in sys.modules "
    f"if m in {HEAVY!r})), file=sys.stderr))\n"
    "from asif_qdrant.cli import main\n"
    "main(sys.argv[1:])\n"
)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model with the default encoders' names and dims, filled with random embeddings."""
    if not (offline_package_available("minilm") and offline_package_available("lite0")):
        pytest.skip("needs the offline encoders (scripts/setup.sh installs them)")
    path = tmp_path_factory.mktemp("fast") / "model"
    rng = np.random.default_rng(0)
    with ASIF(path=path, k=8, show_progress_bar=False) as asif:
        asif.state.fingerprint.image_dim, asif.state.fingerprint.text_dim = 1280, 384
        asif.add_anchor_embeddings(
            rng.random((20, 1280)), rng.random((20, 384)), payloads=[{"caption": "x"}] * 20
        )
        asif.index_embeddings("cat", rng.random((5, 1280)), "image")
    return path


def run(*args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the command line in a fresh process; its result and the heavy modules it imported."""
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    line = [x for x in done.stderr.splitlines() if x.startswith("MODULES=")][-1]
    return done, json.loads(line[len("MODULES=") :])


def test_text_search_never_imports_the_image_model(model: Path) -> None:
    done, modules = run("search", "cat", "a red apple", "--path", str(model), "--json")
    assert json.loads(done.stdout)["hits"]
    assert "sentence_transformers" in modules
    assert "timm" not in modules and "torchvision" not in modules, modules
    # Without -q, one line says what is loading and why it takes a while.
    loading = [x for x in done.stderr.splitlines() if x.startswith("loading the")]
    assert loading == [
        f"loading the text encoder {DEFAULT_TEXT_ENCODER} (first use in this command: "
        "several seconds)..."
    ]


def test_image_search_never_imports_sentence_transformers(model: Path) -> None:
    done, modules = run("search", "cat", "--image", str(STAMP_PATHS[0]), "--path", str(model), "-q")
    assert "timm" in modules
    assert "sentence_transformers" not in modules and "transformers" not in modules, modules
    assert "loading the" not in done.stderr  # -q: not even the loading line


@pytest.mark.parametrize("command", [["info"], ["anchors", "list"], ["anchors", "delete", "0"]])
def test_commands_without_an_encoder_import_none(model: Path, command: list[str]) -> None:
    done, modules = run(*command, "--path", str(model))
    assert modules == [] and "loading the" not in done.stderr, (modules, done.stderr)


def test_verbose_prints_where_the_time_went(model: Path) -> None:
    done, _ = run("-v", "search", "cat", "a red apple", "--path", str(model), "-q")
    timing = [x for x in done.stderr.splitlines() if x.startswith("timings:")]
    assert len(timing) == 1, done.stderr
    assert "opening the model" in timing[0] and "loading the text encoder" in timing[0]
    assert "s to the result" in timing[0] and "asif-qdrant serve" in timing[0]


def test_a_different_encoder_is_refused_without_loading_it(model: Path) -> None:
    code = (
        "import sys\n"
        "from asif_qdrant import ASIF\n"
        "from asif_qdrant.errors import FingerprintMismatchError\n"
        "try:\n"
        f"    ASIF(path={str(model)!r}, text_encoder='all-mpnet-base-v2')\n"
        "except FingerprintMismatchError as e:\n"
        "    print(e)\n"
        "print(sorted(m for m in sys.modules if m in ('torch', 'sentence_transformers')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert f"built with the text encoder '{DEFAULT_TEXT_ENCODER}'" in out
    assert "opened with the text encoder 'all-mpnet-base-v2'." in out
    assert out.strip().endswith("[]")  # refused by name: nothing was loaded
    # An alias of the stored encoder is accepted, still without loading it.
    with ASIF(path=model, image_encoder="tf_efficientnet_lite0") as asif:
        assert asif.fingerprint.image_encoder == DEFAULT_IMAGE_ENCODER
        assert "image" not in asif.state.encoders
    with pytest.raises(FingerprintMismatchError, match="timm/resnet18"):
        ASIF(path=model, image_encoder="resnet18")
