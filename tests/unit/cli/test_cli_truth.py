"""The command line tells the truth (#15 items 3, 7, 8): honest opens, named and quiet output,
errors in command-line terms, one JSON error document with ``--json``."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from asif_qdrant.cli import main
from asif_qdrant.cli.common import cli_message, quiet_third_parties
from asif_qdrant.retriever.layout import model_fingerprints, model_names
from asif_qdrant.store import EdgeStore
from tests.helpers import precomputed_asif


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded store with two models: 'pets' (25 anchors, a catalog) and 'toys' (3)."""
    path = tmp_path_factory.mktemp("truth") / "db"
    rng = np.random.default_rng(0)
    with precomputed_asif(path=path, name="pets", k=2) as asif:
        captions = [{"caption": f"pet {i}"} for i in range(25)]
        asif.add_anchor_embeddings(rng.random((25, 8)), rng.random((25, 6)), payloads=captions)
        asif.index_embeddings("photos", rng.random((4, 8)), "image")
    with precomputed_asif(path=path, name="toys", k=2) as asif:
        asif.add_anchor_embeddings(rng.random((3, 8)), rng.random((3, 6)))
    return path


# ------------------------------------------------------------------ 3: opens that tell the truth
def test_model_names_lists_models_with_a_fingerprint(db: Path) -> None:
    with EdgeStore(db) as store:
        assert model_names(store) == ["pets", "toys"]
        assert model_fingerprints(store)["pets"].anchor_count == 25


def test_info_on_a_missing_path_fails_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere-xyz"
    code, out, err = invoke("info", "--path", str(missing))
    assert code == 1 and not missing.exists()
    assert f"There is no ASIF model at {missing}: the folder does not exist" in err
    assert "`asif-qdrant anchors add`" in err
    code, out, _ = invoke("info", "--path", str(missing), "--json")
    assert code == 1 and not missing.exists()
    assert json.loads(out)["error"] == "ModelNotFoundError"


@pytest.mark.parametrize(
    "command",
    [
        ["anchors", "list"],
        ["anchors", "delete", "1"],
        ["search", "photos", "a cat"],
        ["index", "photos", "--texts", __file__],
        ["repair"],
        ["export", "--out", "x.tar"],
    ],
)
def test_commands_that_read_a_model_create_nothing(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "nowhere"
    code, out, _ = invoke(*command, "--path", str(missing), "--json")
    assert code != 0 and not missing.exists()
    assert json.loads(out)["error"]


def test_a_folder_that_is_no_store_stays_untouched(tmp_path: Path) -> None:
    code, _, err = invoke("anchors", "list", "--path", str(tmp_path))
    assert code == 1 and "is no asif-qdrant store" in err
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_name_names_the_models_there(db: Path) -> None:
    code, _, err = invoke("anchors", "list", "--path", str(db))  # --name asif: not there
    assert code == 1
    assert f"There is no ASIF model named 'asif' at {db}. The models there: 'pets', 'toys'" in err
    assert "--name pets" in err
    with EdgeStore(db) as store:
        assert model_names(store) == ["pets", "toys"]  # nothing created
        assert not store.has_collection("asif_meta")


def test_anchors_add_creates_a_model(tmp_path: Path) -> None:
    folder = tmp_path / "pairs"
    folder.mkdir()
    Image.new("RGB", (4, 4)).save(folder / "a.png")
    code, _, err = invoke("anchors", "add", "--folder", str(folder), "--path", str(tmp_path / "n"))
    # No such encoder offline is fine: what matters is that the open itself was allowed.
    assert "There is no ASIF model" not in err
    assert "no a.txt" in err  # the loader names the image without a caption (item 8)
    assert code == 1


def test_info_lists_every_model_in_a_table(db: Path) -> None:
    code, out, _ = invoke("info", "--path", str(db))
    assert code == 0, out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("model "))
    assert lines[header].split()[:2] == ["model", "anchors"]
    assert lines[header + 1].split()[:2] == ["pets", "25"]
    assert "photos (4 items)" in lines[header + 1]
    assert lines[header + 2].split()[:2] == ["toys", "3"]
    assert "None" not in out and "{" not in out  # no Python reprs
    code, out, _ = invoke("info", "--path", str(db), "--name", "pets")
    assert code == 0 and "model 'pets':" in out and "anchor count: 25" in out
    assert "catalog photos: 4 items, indexed at anchor version 1" in out
    data = json.loads(invoke("info", "--path", str(db), "--json")[1])
    assert data["models"] == ["pets", "toys"] and "name" not in data  # two: none chosen
    data = json.loads(invoke("info", "--path", str(db), "--name", "toys", "--json")[1])
    assert data["name"] == "toys" and data["anchor_count"] == 3 and data["k"] == 2
    code, _, err = invoke("info", "--path", str(db), "--name", "cars")
    assert code == 1 and "'pets', 'toys'" in err


# ------------------------------------------------------------------ 8: errors in CLI terms
def test_library_advice_is_translated_to_commands(db: Path) -> None:
    code, _, err = invoke("anchors", "delete", "999", "--path", str(db), "--name", "pets")
    assert code == 1
    assert "list them with `asif-qdrant anchors list`" in err and "list_anchors()" not in err
    where = ("--path", str(db), "--name", "pets", "--json")
    code, out, _ = invoke("search", "nothing", "a cat", *where)
    doc = json.loads(out)
    assert code == 1 and doc["error"] == "CollectionNotFoundError"
    assert "with `asif-qdrant index` first" in doc["message"] and "ASIF.index()" not in out


def test_parameter_errors_name_the_flag() -> None:
    import click

    command = click.Command("x", params=[click.Option(["--k"]), click.Option(["--csa-dim"])])
    assert cli_message("The 'k' parameter of ASIF must be >= 1.", command) == "--k must be >= 1."
    assert cli_message("The 'csa_dim' parameter of ASIF is bad.", command) == "--csa-dim is bad."
    # A parameter the command has no flag for keeps the library's wording.
    assert cli_message("The 'p' parameter of ASIF is bad.", command).startswith("The 'p'")


def test_index_an_empty_folder_says_so(db: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = invoke("index", "x", "--image-folder", str(empty), "--path", str(db))
    assert code == 2
    assert f"the folder {empty} holds no images" in err and "give --images" not in err
    (tmp_path / "blank.txt").write_text("\n\n")
    code, _, err = invoke("index", "x", "--texts", str(tmp_path / "blank.txt"), "--path", str(db))
    assert code == 2 and "holds no text" in err


def test_anchors_list_says_when_it_cut(db: Path) -> None:
    code, out, _ = invoke("anchors", "list", "--path", str(db), "--name", "pets")
    assert code == 0
    assert "(the first 20 of 25: see more with --limit N, or all with --limit 0)" in out
    code, out, _ = invoke("anchors", "list", "--path", str(db), "--name", "pets", "--limit", "0")
    assert code == 0 and "the first" not in out and "pet 24" in out
    data = json.loads(invoke("anchors", "list", "--path", str(db), "--name", "toys", "--json")[1])
    assert data["truncated"] is False and data["shown"] == 3


@pytest.mark.parametrize(
    ("args", "error", "code"),
    [
        (["search", "--json"], "MissingParameter", 2),
        (["search", "x", "q", "--bogus", "--json"], "NoSuchOption", 2),
        (["search", "x", "q", "--method", "clip", "--json"], "BadParameter", 2),
        (["search", "x", "--json"], "UsageError", 2),  # neither QUERY nor --image
        (["nosuch", "--json"], "NoSuchCommand", 2),
    ],
)
def test_json_usage_errors_are_one_json_document(
    db: Path, args: list[str], error: str, code: int
) -> None:
    result = CliRunner().invoke(main, [*args, "--path", str(db)])
    assert result.exit_code == code
    doc = json.loads(result.stdout)  # the whole of stdout: one document
    assert doc["error"] == error and doc["message"]


def test_json_success_is_unchanged(db: Path) -> None:
    code, out, _ = invoke("anchors", "list", "--path", str(db), "--name", "toys", "--json")
    assert code == 0 and json.loads(out)["anchor_count"] == 3


# ------------------------------------------------------------------ 7: quiet
def test_quiet_silences_transformers_and_hub_bars_and_logs() -> None:
    pytest.importorskip("transformers")
    from huggingface_hub import utils as hub
    from transformers.utils import logging as tf_logging

    tf_logging.enable_progress_bar()
    with quiet_third_parties(True):
        assert not tf_logging.is_progress_bar_enabled()  # the "Loading weights" bar
        assert hub.are_progress_bars_disabled()
        assert logging.getLogger("transformers").getEffectiveLevel() >= logging.ERROR
        bar = tf_logging.tqdm(range(3), desc="Loading weights")
        assert type(bar).__name__ == "EmptyTqdm"
    assert tf_logging.is_progress_bar_enabled()  # put back afterwards
    assert not hub.are_progress_bars_disabled()
    with quiet_third_parties(False):
        assert tf_logging.is_progress_bar_enabled()


def test_quiet_set_before_transformers_is_imported(tmp_path: Path) -> None:
    """In a fresh process -q keeps transformers' bars off even when it is imported later."""
    import subprocess

    code = (
        "from asif_qdrant.cli.common import quiet_third_parties\n"
        "with quiet_third_parties(True):\n"
        "    from transformers.utils import logging as t\n"
        "    print(t.is_progress_bar_enabled())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_export_and_migrate_name_the_models_there(db: Path, tmp_path: Path) -> None:
    code, _, err = invoke("export", "--out", str(tmp_path / "x.tar"), "--path", str(db))
    assert code == 1 and "The models there: 'pets', 'toys'" in err
    assert not (tmp_path / "x.tar").exists()
    to = tmp_path / "to"
    code, _, err = invoke("migrate", "--path", str(db), "--name", "cars", "--to-path", str(to))
    assert code == 1 and "named 'cars'" in err and not to.exists()
    code, _, err = invoke("export", "--out", str(tmp_path / "y.tar"), "--path", str(tmp_path))
    assert code == 2 and "no embedded store" in err and not (tmp_path / "collections").exists()
