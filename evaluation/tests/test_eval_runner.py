"""The runner end to end on tiny synthetic data with the small deterministic test encoders.

The real encoders and data are exercised by evaluation/tests/test_evaluation_smoke.py; here
the plumbing (tasks, registry, report files, skipping, the library == numpy check) runs in
seconds. The test encoders stand in for Lite0 / MiniLM under their names.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
from asif_qdrant.errors import InvalidParameterError
from click.testing import CliRunner
from PIL import Image

from asif_qdrant_evaluation import (
    TASKS,
    EvalConfig,
    Table,
    TaskResult,
    register_task,
    run_evaluation,
)
from asif_qdrant_evaluation.assets import Assets
from asif_qdrant_evaluation.cli import evaluate
from tests.conftest import ColorImageEncoder, HashTextEncoder

COLORS = {
    "animals": ["red", "darkred", "salmon", "crimson", "firebrick", "tomato"],
    "food": ["green", "lime", "olive", "seagreen", "forestgreen", "darkgreen"],
    "vehicles": ["blue", "navy", "royalblue", "steelblue", "dodgerblue", "darkblue"],
}


@pytest.fixture
def assets(tmp_path: Path) -> Assets:
    stamps = tmp_path / "stamps"
    for cat, colors in COLORS.items():
        (stamps / cat).mkdir(parents=True)
        for c in colors:
            img = Image.new("RGB", (16, 16), c)
            img.paste(Image.new("RGB", (6, 6), "white"), (hash(c) % 8, 3))
            img.save(stamps / cat / f"{c}.png")
            (stamps / cat / f"{c}.txt").write_text(f"A {c} {cat[:-1]}.\n")
    fashion = tmp_path / "fashion"
    fashion.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("t10k", 60), ("train", 200)):
        labels = np.arange(n) % 10
        images = (labels[:, None, None] * 25 + rng.integers(0, 5, (n, 28, 28))).astype(np.uint8)
        with gzip.open(fashion / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(b"\0" * 16 + images.tobytes())
        with gzip.open(fashion / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(b"\0" * 8 + labels.astype(np.uint8).tobytes())
    return Assets(
        data_dir=tmp_path / "no-data",
        tuxpaint_dir=stamps,
        openclipart_dir=tmp_path / "no-openclipart",
        fashion_mnist_dir=fashion,
    )


def _encoders() -> dict[str, object]:
    image = ColorImageEncoder()
    image.name = "timm/tf_efficientnet_lite0"
    text = HashTextEncoder(dim=64, name="sentence-transformers/all-MiniLM-L6-v2")
    return {"lite0": image, "minilm": text}


def _config(**kw: object) -> EvalConfig:
    settings: dict[str, object] = {
        "tuxpaint_limit": None,
        "folds": 3,
        "fashion_per_class": 4,
        "adjust_pairs": 10,
        "adjust_trials": 2,
        "methods": ("asif", "numpy"),
        "encoders_image": ("lite0",),
        "encoders_text": ("minilm", "mpnet"),
        "k": 5,
        "kp_ks": (2, 5, 50),
        "kp_ps": (1, 8),
        "scaling_sizes": (4, 8),
        "pools": ("tuxpaint", "openclipart", "emoji"),  # the last two are not installed
    }
    settings.update(kw)
    return EvalConfig.smoke(**settings)


@pytest.mark.blas
def test_runner_writes_every_figure_and_library_equals_numpy(
    tmp_path: Path, assets: Assets, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("asif_qdrant_evaluation.runner.Assets", lambda **kw: assets)
    out = tmp_path / "out"
    report = run_evaluation(
        _config(),
        out_dir=out,
        cache_dir=tmp_path / "cache",
        data_dir=tmp_path / "no-data",
        show_progress_bar=False,
        encoders=_encoders(),
        command="pytest",
        task_command="python -m asif_qdrant_evaluation --task {task} --quick",
    )
    assert [r.name for r in report.results] == list(TASKS)
    assert all(r.skipped is None for r in report.results), [r.skipped for r in report.results]
    for name in ("retrieval", "zeroshot", "adjust"):
        same = report.result(name).figures["library_equals_numpy"]
        assert same and all(same.values()), (name, same)
    ret = report.result("retrieval").figures
    lib = ret["tuxpaint (18)"]["asif"]
    assert lib == ret["tuxpaint (18)"]["numpy"]
    assert lib["image->text"]["R@1"] > ret["chance"]["image->text"]["R@1"]
    zs = report.result("zeroshot").figures
    assert zs["best_strategy"] in ("max", "mean-relative", "mean-embedding")
    assert zs["own_max_vs_classify"]["same_argmax"] is True
    adj = report.result("adjust").figures
    assert adj["asif"]["after_delete"] == [adj["asif"]["before"]] * 2  # deleting restores
    assert len(adj["asif"]["after"]) == 2 and len(adj["asif"]["edit_seconds"]) == 2
    img = report.result("image").figures
    assert set(img["tuxpaint (18)"]["asif"]) == {"intra", "caption-side", "inversion"}
    assert img["library_equals_numpy"] and all(img["library_equals_numpy"].values())
    assert img["raw cosine"]["category"]["queries"] == 18
    csa = report.result("csa").figures
    assert set(csa["compared"]) == {"ASIF", "CSA", "hybrid"} and csa["advice"]
    assert csa["compared"]["ASIF"]["Tux i->t R@1"] == lib["image->text"]["R@1"]
    enc = report.result("encoders")
    assert enc.figures["skipped"] == ["lite0 + mpnet (missing: mpnet)"]
    # the whole-pool point of the scaling curve is the zero-shot task's figure
    series = report.result("scaling").figures["series"]
    assert series["tux categories accuracy"]["mean"][-1] == pytest.approx(
        zs[next(k for k in zs if k.startswith("Tux Paint"))]["tuxpaint (18)"]["numpy"]["max"]
    )
    # files
    md = (out / "RESULTS.md").read_text()
    data = json.loads((out / "results.json").read_text())
    assert (out / "eval_scaling.png").stat().st_size > 1000
    assert (out / "eval_kp_heatmap.png").stat().st_size > 1000
    assert "python -m asif_qdrant_evaluation --task adjust --quick" in md
    assert re.search(r"x86_64|aarch64|arm64", md) and "CPU cores" in md
    assert "![Scaling with the number of anchors](eval_scaling.png)" in md
    assert data["config"]["k"] == 5 and data["machine"]["cpus"] >= 1
    assert data["data"]["pool"]["per_source"] == {"tuxpaint": 18}
    assert "openclipart" in md and "not installed, left out" in md
    assert data["tasks"]["adjust"]["figures"]["asif"]["before"] == adj["asif"]["before"]
    # second run: everything comes from the cache
    again = run_evaluation(
        _config(methods=("numpy",)),
        ["retrieval"],
        cache_dir=tmp_path / "cache",
        show_progress_bar=False,
        encoders={},
    )
    assert all(v["encoded"] == 0 for v in again.encoders.values())
    assert again.result("retrieval").figures["tuxpaint (18)"]["numpy"] == lib


def test_missing_data_skips_with_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = Assets(
        data_dir=tmp_path,
        tuxpaint_dir=tmp_path / "none",
        openclipart_dir=tmp_path / "none",
        fashion_mnist_dir=tmp_path / "none",
    )
    monkeypatch.setattr("asif_qdrant_evaluation.runner.Assets", lambda **kw: empty)
    report = run_evaluation(
        _config(), ["retrieval", "adjust"], cache_dir=tmp_path / "c", show_progress_bar=False
    )
    assert report.result("retrieval").skipped == "not installed: tuxpaint."
    assert report.result("adjust").skipped == "not installed: fashion-mnist."
    assert "Not measured: not installed: tuxpaint." in report.to_markdown()


def test_unknown_task_and_config_errors() -> None:
    with pytest.raises(InvalidParameterError, match="Unknown task\\(s\\) 'nope'"):
        run_evaluation(EvalConfig.smoke(), ["nope"])
    with pytest.raises(InvalidParameterError, match="'image_encoder' parameter of EvalConfig"):
        EvalConfig(image_encoder="minilm")
    with pytest.raises(InvalidParameterError, match="'methods' parameter of EvalConfig"):
        EvalConfig(methods=("clip",))
    with pytest.raises(InvalidParameterError, match="'folds' parameter of EvalConfig"):
        EvalConfig(folds=1)
    cfg = EvalConfig(k=30, p=3.0)
    assert 30 in cfg.kp_ks and 3.0 in cfg.kp_ps  # the chosen k, p always lie on the grid
    assert EvalConfig.smoke().quick and not EvalConfig().quick


def test_register_task_and_table() -> None:
    @register_task("test-extra", "Extra", "an extra task")
    def _extra(ctx: object) -> TaskResult:
        return TaskResult("test-extra", "Extra", tables=[Table("t", ["a"], [[float("nan")]])])

    try:
        assert TASKS["test-extra"].run(None).tables[0].markdown().endswith("| n/a |")
    finally:
        del TASKS["test-extra"]


def test_cli_help_and_list() -> None:
    runner = CliRunner()
    result = runner.invoke(evaluate, ["--help"])
    assert result.exit_code == 0
    for option in ("--task", "--quick", "--json", "--out", "--list", "--cache-dir", "--csa-dim"):
        assert option in result.output
    assert "--csa-ridge" in result.output and "--rrf-k" in result.output
    result = runner.invoke(evaluate, ["--list", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert list(data["tasks"]) == list(TASKS) and "asif" in data["methods"]
    result = runner.invoke(evaluate, ["--task", "nope"])
    assert result.exit_code == 2 and "nope" in result.output
    result = runner.invoke(evaluate, ["--k", "0", "--task", "retrieval", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["error"] == "InvalidParameterError"
    result = runner.invoke(evaluate, ["--csa-ridge", "0", "--task", "csa", "--json"])
    assert result.exit_code == 1 and "csa_ridge" in json.loads(result.output)["message"]


def test_identity_note_counts_differing_queries() -> None:
    from asif_qdrant_evaluation.ranks import identity_note

    same = {"a": {"queries": 10, "differing": 0, "max_diff": 0.0}}
    assert "every per-query rank is identical" in identity_note(same)
    same["csa: b"] = {"queries": 20, "differing": 3, "max_diff": 0.0123}
    note = identity_note(same)
    assert "identical per-query ranks in 1 of 2 comparisons" in note
    assert "3 of 20 queries" in note and "0.0123" in note
    assert "not compared" in identity_note({})


def test_library_equals_numpy_excuses_only_near_ties_at_the_tie_tolerance() -> None:
    """Rounding may push a score gap across SCORE_TOLERANCE: defined as a near-tie, and only it."""
    from asif_qdrant_evaluation.metrics import SCORE_TOLERANCE
    from asif_qdrant_evaluation.ranks import Ranks, identity_note

    target = 0.5
    lib, ref = Ranks(), Ranks()
    edge = SCORE_TOLERANCE + 1e-7  # just above the tolerance here, just below it there
    lib.add(np.array([[target, target + edge, 0.1]]), [0])
    ref.add(np.array([[target, target + edge - 2e-7, 0.1]]), [0])
    agree = lib.agreement(ref)
    assert agree["differing"] == 0 and agree["near_ties"] == 1
    assert "1 queries with a near-tie" in identity_note({"adjust": agree})
    far, other = Ranks(), Ranks()
    far.add(np.array([[target, target + 1e-3, 0.1]]), [0])  # clearly above
    other.add(np.array([[target, target - 1e-3, 0.1]]), [0])  # clearly below
    assert far.agreement(other)["differing"] == 1
