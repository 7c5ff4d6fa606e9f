"""The asif-qdrant CLI and the demo, on real stamps, real encoders and the embedded engine."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from asif_qdrant.cli import main
from asif_qdrant.loaders import load_tuxpaint_stamps

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """An anchor folder (image + .txt caption) and a catalog folder, from real stamps."""
    try:
        pairs = load_tuxpaint_stamps()
    except Exception as e:  # pragma: no cover - the setup script installs them
        pytest.skip(str(e))
    root = tmp_path_factory.mktemp("cli")
    anchors, catalog = root / "anchors", root / "catalog"
    anchors.mkdir()
    catalog.mkdir()
    chosen = pairs[::20]  # 40 stamps over every category
    captions = []
    for i, pair in enumerate(chosen):
        target = anchors if i % 4 else catalog
        shutil.copy(pair.image, target / f"{i:03d}.png")
        if target is anchors:
            (target / f"{i:03d}.txt").write_text(pair.caption + "\n")
        else:
            captions.append(pair.caption)
    return anchors, catalog, captions


def run(*args: str) -> dict:
    result = CliRunner().invoke(main, [*args, "--json", "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cli_end_to_end(tmp_path: Path, folders) -> None:
    anchors, catalog, captions = folders
    db = str(tmp_path / "db")
    added = run("anchors", "add", "--folder", str(anchors), "--k", "20", "--path", db)
    assert added["added"] == 30 and added["anchor_count"] == 30
    listed = run("anchors", "list", "--limit", "5", "--path", db)
    assert listed["anchor_count"] == 30 and len(listed["anchors"]) == 5
    assert all(a["caption"] for a in listed["anchors"])
    indexed = run("index", "cat", "--image-folder", str(catalog), "--path", db)
    assert indexed["indexed"] == 10
    found = run("search", "cat", captions[0], "--limit", "3", "--path", db)
    assert 1 <= len(found["hits"]) <= 3
    assert all(h["payload"]["modality"] == "image" for h in found["hits"])
    scores = [h["score"] for h in found["hits"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    image = sorted(catalog.glob("*.png"))[0]
    by_image = run("search", "cat", "--image", str(image), "--limit", "1", "--path", db)
    assert by_image["hits"][0]["payload"]["image"] == str(image)  # itself, first
    classified = run("classify", str(image), "--labels", "animal,vehicle,food", "--path", db)
    assert classified["predictions"][0]["label"] in {"animal", "vehicle", "food"}
    info = run("info", "--path", db)
    assert info["k"] == 20 and info["anchor_count"] == 30 and "cat" in info["catalogs"]
    deleted = run("anchors", "delete", "0", "1", "--path", db)
    assert deleted == {"deleted": 2, "anchor_count": 28}


def test_cli_methods_csa_hybrid_and_crossing_the_gap(tmp_path: Path, folders) -> None:
    anchors, catalog, captions = folders
    db = str(tmp_path / "db")
    run("anchors", "add", "--folder", str(anchors), "--k", "20", "--csa-dim", "8", "--path", db)
    run("index", "cat", "--image-folder", str(catalog), "--path", db)
    image = sorted(catalog.glob("*.png"))[0]
    for method in ("asif", "csa", "hybrid"):
        found = run("search", "cat", captions[0], "--method", method, "--path", db)
        assert found["hits"], method
        scores = [h["score"] for h in found["hits"]]
        assert scores == sorted(scores, reverse=True)
        by_image = run(
            "search", "cat", "--image", str(image), "--method", method, "--limit", "1", "--path", db
        )
        assert by_image["hits"][0]["payload"]["image"] == str(image), method  # itself, first
        labels = run(
            "classify", str(image), "--labels", "animal,vehicle", "--method", method, "--path", db
        )
        assert labels["predictions"][0]["label"] in {"animal", "vehicle"}
    inverted = run("search", "cat", "--image", str(image), "--query-via", "invert", "--path", db)
    assert inverted["hits"] and all(h["score"] > 0 for h in inverted["hits"])
    result = CliRunner().invoke(main, ["search", "cat", "x", "--method", "clip", "--path", db])
    assert result.exit_code == 2 and "'clip' is not one of 'asif', 'csa', 'hybrid'" in result.output


def test_cli_errors_are_clear(tmp_path: Path, folders) -> None:
    anchors, _, _ = folders
    db = str(tmp_path / "db")
    result = CliRunner().invoke(
        main, ["anchors", "add", "--folder", str(anchors), "--k", "0", "--path", db]
    )
    assert result.exit_code == 1
    assert "--k must be an int >= 1. Got 0 instead." in result.output  # the flag, in CLI terms
    result = CliRunner().invoke(main, ["search", "nothing", "a cat", "--path", db, "--json"])
    assert result.exit_code == 1
    # No model at db (the add above failed): the open says so (a CollectionNotFoundError).
    assert json.loads(result.stdout)["error"] == "ModelNotFoundError"
    result = CliRunner().invoke(main, ["anchors", "add", "--path", db])
    assert result.exit_code == 2 and "exactly one of --folder" in result.output


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["anchors"],
        ["anchors", "add"],
        ["anchors", "list"],
        ["anchors", "delete"],
        ["index"],
        ["search"],
        ["classify"],
        ["demo"],
        ["info"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_console_script_is_installed() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "asif_qdrant", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "version" in out.stdout


def test_demo_smoke(tmp_path: Path, image_encoder, text_encoder) -> None:
    from asif_qdrant.demo import run_demo

    result = run_demo(
        tmp_path,
        k=50,
        limit_pairs=80,
        show_progress_bar=False,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
    )
    assert result.anchors + result.catalog == 80
    assert result.recall["R@10"] >= result.recall["R@5"] >= result.recall["R@1"]
    assert result.recall["R@5"] > result.chance_recall["R@5"]
    assert 0 <= result.zero_shot_accuracy <= 1
    with Image.open(result.contact_sheet) as sheet:
        assert sheet.width > 500 and sheet.height > 500
    table = result.table()
    assert "R@1" in table and "zero-shot" in table and "machine:" in table
    assert result.zero_shot_rule == "spread 0.3" and "(spread 0.3)" in table
    # It ends with its model's path and name and three commands that work as printed.
    assert f"the model: 'tuxpaint' in {result.model_path}" in table
    assert [c.split()[1] for c in result.commands] == ["search", "classify", "explain"]
    for command in result.commands:
        assert f"  {command}" in table
        args = shlex.split(command)
        assert args[0] == "asif-qdrant"
        done = CliRunner().invoke(main, [*args[1:], "--json", "-q"], catch_exceptions=False)
        assert done.exit_code == 0, (command, done.output)
        assert json.loads(done.stdout)


def test_demo_classify_p_gives_the_paper_classification(
    tmp_path: Path, image_encoder, text_encoder
) -> None:
    from asif_qdrant.demo import run_demo

    result = run_demo(
        tmp_path,
        k=50,
        classify_p=8.0,
        limit_pairs=40,
        show_progress_bar=False,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
    )
    assert result.zero_shot_rule == "p=8" and "(p=8)" in result.table()


def test_quiet_prints_no_third_party_bar(tmp_path: Path, folders) -> None:
    """-q: not even transformers' 'Loading weights' bar (a fresh process loads the encoders)."""
    anchors, catalog, captions = folders
    db = str(tmp_path / "db")
    run("anchors", "add", "--folder", str(anchors), "--k", "20", "--path", db)
    run("index", "cat", "--image-folder", str(catalog), "--path", db)
    command = [sys.executable, "-m", "asif_qdrant", "search", "cat", captions[0], "--path", db]
    quiet = subprocess.run([*command, "-q"], capture_output=True, text=True, check=True)
    assert quiet.stdout.strip() and quiet.stderr == "", quiet.stderr


def test_cli_stores_the_classification_p_rule(tmp_path: Path, folders) -> None:
    """``--classify-p 8`` (the paper's) and ``--classify-spread`` are stored with the model."""
    from asif_qdrant import ASIF

    anchors, catalog, _ = folders
    db = tmp_path / "db"
    add = ("anchors", "add", "--folder", str(anchors), "--k", "20", "--path", str(db))
    run(*add, "--classify-p", "8")
    with ASIF(path=db) as asif:
        fp = asif.fingerprint
        assert (fp.classify_p, fp.classify_spread) == (8.0, 0.3)
        image = sorted(catalog.glob("*.png"))[0]
        paper = asif.classify_scores([image], ["animal", "vehicle", "food"])
    again = run(*add, "--classify-spread", "0.5")  # nothing new to add: the setting is stored
    assert again["added"] == 0
    with ASIF(path=db) as asif:
        fp = asif.fingerprint
        assert (fp.classify_p, fp.classify_spread) == (None, 0.5)
        assert not (asif.classify_scores([image], ["animal", "vehicle", "food"]) == paper).all()
    bad = CliRunner().invoke(main, [*add, "--classify-spread", "2"])
    assert bad.exit_code != 0 and "--classify-spread" in bad.output and "(0, 1]" in bad.output
