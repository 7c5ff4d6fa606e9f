"""explain, explain-label, anchors audit and edit reports through the CLI: real stamps,
real encoders, the embedded engine."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from asif_qdrant import ASIF
from asif_qdrant.cli import main
from asif_qdrant.loaders import load_tuxpaint_stamps
from asif_qdrant.retriever.anchors import anchor_embeddings

pytestmark = pytest.mark.integration

CATEGORIES = ("animals", "food", "vehicles")
MODALITIES = ("image", "text")


@pytest.fixture(scope="module")
def stamps(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Anchor folder (image + caption), catalog folder, and a labeled folder per category."""
    try:
        pairs = load_tuxpaint_stamps()
    except Exception as e:  # pragma: no cover - the setup script installs them
        pytest.skip(str(e))
    root = tmp_path_factory.mktemp("explain-cli")
    anchors, catalog, labeled = root / "anchors", root / "catalog", root / "labeled"
    anchors.mkdir()
    catalog.mkdir()
    chosen = [p for p in pairs if p.metadata["category"] in CATEGORIES][::9]
    captions = {}
    for i, pair in enumerate(chosen):
        if i % 3:
            shutil.copy(pair.image, anchors / f"{i:03d}.png")
            (anchors / f"{i:03d}.txt").write_text(pair.caption + "\n")
        else:
            shutil.copy(pair.image, catalog / f"{i:03d}.png")
            captions[str(catalog / f"{i:03d}.png")] = pair.caption
            target = labeled / pair.metadata["category"]
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(pair.image, target / f"{i:03d}.png")
    return {"anchors": anchors, "catalog": catalog, "labeled": labeled, "captions": captions}


def run(*args: str) -> dict:
    result = CliRunner().invoke(main, [*args, "--json", "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def build_model(stamps: dict, path: str) -> None:
    """The model of these tests: the anchor stamps (k=40) and the catalog 'cat'.

    With the paper's classification (--classify-p 8): the audit figures below were measured
    with it (the guard's "1.000 -> 0.400"); on these few check images the default spread
    rule ranks the culprits differently, and deleting its top two lowers the check accuracy,
    so the guard refuses. The tests are about the audit / delete / restore paths.
    """
    run(
        "anchors",
        "add",
        "--folder",
        str(stamps["anchors"]),
        "--k",
        "40",
        "--classify-p",
        "8",
        "--path",
        path,
    )
    run("index", "cat", "--image-folder", str(stamps["catalog"]), "--path", path)


@pytest.fixture(scope="module")
def db(stamps: dict, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("db") / "model")
    build_model(stamps, path)
    return path


def panels(png: Path) -> list[dict]:
    with Image.open(png) as im:
        return json.loads(im.info["asif:panels"])


def test_explain_prints_the_anchors_behind_a_score_and_draws_them(
    db: str, stamps: dict, tmp_path: Path
) -> None:
    caption = next(iter(stamps["captions"].values()))
    found = run("search", "cat", caption, "--limit", "3", "--path", db)
    top = found["hits"][0]
    png = tmp_path / "why.png"
    why = run("explain", "cat", caption, "--top", "5", "--png", str(png), "--path", db)
    assert why["item_id"] == top["id"] and why["query"] == caption
    # The entries add up to the search score (the rest: the anchors beyond --top).
    total = sum(a["contribution"] for a in why["anchors"]) + why["rest"]
    assert abs(total - top["score"]) < 1e-5 and abs(why["score"] - top["score"]) < 1e-5
    assert len(why["anchors"]) == min(5, why["shared_anchors"])
    for a in why["anchors"]:
        assert set(a) == {"id", "caption", "image", "query_weight", "item_weight", "contribution"}
        assert a["caption"] and Path(a["image"]).is_file()
        assert a["contribution"] == pytest.approx(a["query_weight"] * a["item_weight"])
    # The picture: query, item, bars, and one framed panel per anchor showing its image.
    assert why["png"] == str(png)
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width > 1200 and 700 < im.height < 1400
        arr = np.asarray(im.convert("RGB")).astype(int)
    layout = panels(png)
    kinds = [p["kind"] for p in layout]
    assert kinds.count("query") == kinds.count("item") == kinds.count("bars") == 1
    assert kinds.count("anchor") == len(why["anchors"]) == 5
    for p in layout:
        x0, y0, x1, y1 = p["box"]
        inner = arr[y0 + 6 : y1 - 6, x0 + 6 : x1 - 6]
        non_white = (inner < 235).any(axis=-1).mean()
        if p["kind"] in ("anchor", "item", "bars"):
            assert non_white > 0.03, p  # a stamp (or the bars) is drawn there
    # The query was a text: its panel holds the words, on a light background.
    text_mode = run("explain", "cat", caption, "--item", str(top["id"]), "--no-png", "--path", db)
    assert text_mode["item_id"] == top["id"] and "png" not in text_mode
    result = CliRunner().invoke(main, ["explain", "cat", caption, "--no-png", "--path", db, "-q"])
    assert result.exit_code == 0 and "shared anchors" in result.output and "score" in result.output


def test_explain_an_image_query(db: str, stamps: dict, tmp_path: Path) -> None:
    image = next(iter(stamps["captions"]))
    why = run("explain", "cat", "--image", image, "--png", str(tmp_path / "i.png"), "--path", db)
    hit = run("search", "cat", "--image", image, "--limit", "1", "--path", db)["hits"][0]
    assert why["item_id"] == hit["id"] and abs(why["score"] - hit["score"]) < 1e-5
    assert why["query"] == image
    query_box = next(p["box"] for p in panels(tmp_path / "i.png") if p["kind"] == "query")
    with Image.open(tmp_path / "i.png") as im:
        x0, y0, x1, y1 = query_box
        inner = np.asarray(im.convert("RGB"))[y0 + 6 : y1 - 6, x0 + 6 : x1 - 6]
    assert (inner < 235).any(axis=-1).mean() > 0.03  # the query image is drawn


def test_explain_label(db: str, stamps: dict, tmp_path: Path) -> None:
    image = next(iter(stamps["captions"]))
    labels = "an animal,food,a vehicle"
    out = run(
        "explain-label", image, "--labels", labels, "--png", str(tmp_path / "l.png"), "--path", db
    )
    classified = run("classify", image, "--labels", labels, "--path", db)["predictions"][0]
    assert out["label"] == classified["label"]
    for name, score in classified["scores"].items():
        assert out["scores"][name] == pytest.approx(score, abs=1e-5)
    assert out["margin"] == pytest.approx(
        out["scores"][out["label"]] - out["scores"][out["versus"]]
    )
    kinds = [p["kind"] for p in panels(tmp_path / "l.png")]
    assert kinds.count("anchor") == min(6, len(out["anchors"]))


def test_anchors_audit_then_delete_reports_and_removes(
    stamps: dict, tmp_path: Path, image_encoder, text_encoder
) -> None:
    path = str(tmp_path / "model")
    build_model(stamps, path)
    report = run(
        "anchors",
        "audit",
        "--folder",
        str(stamps["labeled"]),
        "--template",
        "a picture of {}.",
        "--top",
        "5",
        "--delete",
        "2",
        "--apply",
        "--backup",
        str(tmp_path / "deleted.npz"),
        "--path",
        path,
    )
    assert report["labels"] == sorted(CATEGORIES)
    assert report["audit_images"] + report["check_images"] == report["images"]
    ranked = report["audit_anchors"]
    assert ranked and all(a["net"] > 0 for a in ranked)
    assert [a["net"] for a in ranked] == sorted((a["net"] for a in ranked), reverse=True)
    assert report["deleted"] == [a["id"] for a in ranked[:2]]
    assert 0 <= report["audit_accuracy_after"] <= 1 and 0 <= report["check_accuracy_after"] <= 1
    edit = report["edit"]
    assert edit["operation"] == "delete" and edit["items_total"] == len(stamps["captions"])
    assert 0 <= edit["items_touched"] <= edit["items_total"] and edit["seconds"] >= 0
    # The deleted pairs left no trace: not in the anchors, not in any catalog vector.
    listed = run("anchors", "list", "--limit", "1000", "--path", path)
    assert not {a["id"] for a in listed["anchors"]} & set(report["deleted"])
    assert listed["last_edit"]["operation"] == "delete"
    with ASIF(path=path, image_encoder=image_encoder, text_encoder=text_encoder) as asif:
        for rec in asif.store.scroll("cat", with_vectors=["asif"]):
            assert not set(rec.sparse["asif"].to_dict_weights()) & set(report["deleted"])


def test_edit_commands_report_items_and_seconds(stamps: dict, tmp_path: Path) -> None:
    path = str(tmp_path / "model")
    run("anchors", "add", "--folder", str(stamps["anchors"]), "--k", "10", "--path", path)
    run("index", "cat", "--image-folder", str(stamps["catalog"]), "--path", path)
    n = len(stamps["captions"])
    runner = CliRunner()
    again = ["anchors", "add", "--folder", str(stamps["anchors"]), "--path", path, "-q"]
    skipped = runner.invoke(main, again)  # the same pairs: already present, no edit
    assert skipped.exit_code == 0 and "0 added" in skipped.output, skipped.output
    assert "catalog items in" not in skipped.output
    added = runner.invoke(main, [*again, "--on-duplicate", "add"])  # an edit on purpose
    assert added.exit_code == 0, added.output
    assert f"of {n} catalog items in" in added.output
    deleted = runner.invoke(main, ["anchors", "delete", "0", "1", "--path", path, "-q"])
    assert deleted.exit_code == 0 and f"of {n} catalog items in" in deleted.output
    listed = runner.invoke(main, ["anchors", "list", "--path", path, "-q"])
    assert "last edit: delete 2 pairs" in listed.output


def audit_args(stamps: dict, path: str, *more: str) -> list[str]:
    """``anchors audit`` on the labeled stamps (10 images: 5 ranked, 5 held out)."""
    labeled = str(stamps["labeled"])
    return ["anchors", "audit", "--folder", labeled, "--template", "a picture of {}.", *more]


def model_copy(db: str, tmp_path: Path) -> str:
    """A copy of the module's model, for a test that edits it."""
    shutil.copytree(db, tmp_path / "model")
    return str(tmp_path / "model")


def test_anchors_audit_reports_only(db: str, stamps: dict, tmp_path: Path) -> None:
    path = model_copy(db, tmp_path)
    before = run("anchors", "list", "--limit", "0", "--path", path)
    report = run(*audit_args(stamps, path, "--delete", "2", "--path", path))
    assert report["would_delete"] == [a["id"] for a in report["audit_anchors"][:2]]
    assert "deleted" not in report
    # Harm and help are positive amounts, net their difference.
    for a in report["audit_anchors"]:
        assert a["harm"] >= 0 and a["help"] >= 0
        assert a["net"] == pytest.approx(a["harm"] - a["help"], rel=1e-6, abs=1e-9)
    assert run("anchors", "list", "--limit", "0", "--path", path) == before
    text = CliRunner().invoke(main, [*audit_args(stamps, path, "--delete", "2"), "--path", path])
    assert text.exit_code == 0, text.output
    assert "harm: score an anchor pushed towards wrong labels" in text.output
    assert "nothing was deleted. Add --apply" in text.output


def test_anchors_audit_apply_is_refused_when_accuracy_drops(
    db: str, stamps: dict, tmp_path: Path
) -> None:
    path = model_copy(db, tmp_path)
    before = run("anchors", "list", "--limit", "0", "--path", path)
    query = ["search", "cat", "a red apple", "--path", path]
    hits = run(*query)["hits"]
    backup = tmp_path / "deleted.npz"
    # The top 5 of this set take the held-out accuracy from 1.000 to 0.400 (measured).
    args = audit_args(stamps, path, "--delete", "5", "--apply", "--backup", str(backup))
    result = CliRunner().invoke(main, [*args, "--path", path, "-q"])
    assert result.exit_code == 1
    assert "lowers the held-out accuracy 1.000 -> 0.400" in result.output
    assert "nothing was deleted" in result.output and "Give --force" in result.output
    error = json.loads(CliRunner().invoke(main, [*args, "--path", path, "--json", "-q"]).stdout)
    assert error["error"] == "AnchorSetError" and "--force" in error["message"]
    # Put back at once: the same pairs (under new ids) and the same answers.
    after = run("anchors", "list", "--limit", "0", "--path", path)
    assert after["anchor_count"] == before["anchor_count"]
    assert sorted(a["caption"] for a in after["anchors"]) == sorted(
        a["caption"] for a in before["anchors"]
    )
    again = run(*query)["hits"]
    assert [h["payload"] for h in again] == [h["payload"] for h in hits]
    np.testing.assert_allclose(
        [h["score"] for h in again], [h["score"] for h in hits], rtol=1e-5, atol=1e-6
    )
    assert not backup.exists()
    # --force keeps the deletion.
    forced = run(*args, "--force", "--path", path)
    assert forced["check_accuracy_after"] < forced["check_accuracy"] and backup.exists()


def test_anchors_restore_brings_the_deleted_pairs_back(
    db: str, stamps: dict, tmp_path: Path
) -> None:
    path = model_copy(db, tmp_path)
    backup = tmp_path / "deleted.npz"
    with ASIF(path=path) as asif:
        before = {m: dict(zip(*anchor_embeddings(asif.state, m), strict=True)) for m in MODALITIES}
    count = run("anchors", "list", "--path", path)["anchor_count"]
    args = audit_args(stamps, path, "--delete", "2", "--apply", "--backup", str(backup))
    deleted = run(*args, "--path", path)["deleted"]
    assert len(deleted) == 2 and backup.exists()
    assert run("anchors", "list", "--path", path)["anchor_count"] == count - 2
    restored = run("anchors", "restore", str(backup), "--path", path)
    assert restored["restored"] == 2 and restored["anchor_count"] == count
    assert list(restored["ids"]) == [str(i) for i in deleted]
    listed = {a["id"]: a for a in run("anchors", "list", "--limit", "0", "--path", path)["anchors"]}
    with ASIF(path=path) as asif:
        after = {m: dict(zip(*anchor_embeddings(asif.state, m), strict=True)) for m in MODALITIES}
        payloads = asif.list_anchors()
    assert len(payloads) == count
    for old, new in restored["ids"].items():
        assert listed[new]["caption"] == next(p for p in payloads if p["id"] == new)["caption"]
        for m in MODALITIES:  # the same unit vectors (re-normalised: float32 rounding)
            np.testing.assert_allclose(after[m][new], before[m][int(old)], rtol=0, atol=1e-6)
    # A file that is not one is refused in CLI terms.
    (tmp_path / "x.npz").write_bytes(b"nope")
    bad = CliRunner().invoke(main, ["anchors", "restore", str(tmp_path / "x.npz"), "--path", path])
    assert bad.exit_code == 1 and "is not a file of saved anchor pairs" in bad.output


@pytest.mark.parametrize(
    "command", [["explain"], ["explain-label"], ["anchors", "audit"], ["anchors", "restore"]]
)
def test_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_explain_says_when_an_items_image_has_moved(db: str, stamps: dict, tmp_path: Path) -> None:
    """#15 item 2: paths are stored absolute with their hash; a moved file is named, not drawn
    as its quoted path."""
    model = tmp_path / "model"
    shutil.copytree(db, model)  # a copy: the module's model keeps its catalog's files
    photos = tmp_path / "photos"
    photos.mkdir()
    first = sorted(stamps["catalog"].glob("*.png"))[0]
    shutil.copy(first, photos / "x.png")
    added = run("index", "moved", "--image-folder", str(photos), "--path", str(model))
    assert added["added"] == 1
    hit = run("search", "moved", "a picture", "--limit", "1", "--path", str(model))["hits"][0]
    assert hit["payload"]["image"] == str((photos / "x.png").resolve())  # absolute
    assert len(hit["payload"]["image_sha256"]) == 64
    (photos / "x.png").rename(tmp_path / "elsewhere.png")
    png = tmp_path / "why.png"
    args = ["explain", "moved", "a picture", "--png", str(png), "--path", str(model), "-q"]
    # a process of its own: the warning goes where the command's logging sends it (stderr)
    done = subprocess.run(
        [sys.executable, "-m", "asif_qdrant", *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert f"WARNING image moved: {(photos / 'x.png').resolve()}" in done.stderr
    assert png.is_file()
