"""The evaluation's smoke version on real encoders and data (the full one: scripts/evaluate.sh).

48 Tux Paint stamps (3 folds) and 50 Fashion-MNIST test images, the embedded Qdrant engine, the
offline EfficientNet-Lite0 and all-MiniLM-L6-v2. It checks that the library path and the direct
numpy recipe give identical numbers on every task, that the model beats chance, that adding
labelled anchors helps and deleting them restores the model, and that the report is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from asif_qdrant.encoders.base import Encoder
from click.testing import CliRunner

from asif_qdrant_evaluation import EvalConfig, Report, run_evaluation
from asif_qdrant_evaluation.assets import Assets
from asif_qdrant_evaluation.cli import evaluate

pytestmark = pytest.mark.integration

# The encoders task repeats retrieval and zero-shot per encoder pair; its plumbing is covered by
# evaluation/tests/test_eval_runner.py, so the smoke leaves it out to stay short.
TASKS = ["retrieval", "image", "zeroshot", "adjust", "scaling", "kp", "csa"]
#: Each library method with its numpy version (they must give identical ranks).
PAIRS = {"asif": "numpy", "csa": "csa-numpy", "hybrid": "hybrid-numpy"}


def _config() -> EvalConfig:
    return EvalConfig.smoke(
        methods=tuple(m for pair in PAIRS.items() for m in pair),
        tuxpaint_limit=48,
        fashion_per_class=5,
        adjust_pairs=20,
        adjust_trials=2,
    )


@pytest.fixture(scope="module")
def smoke(
    tmp_path_factory: pytest.TempPathFactory,
    image_encoder: Encoder,
    text_encoder: Encoder,
    stamp_paths: list[Path],
) -> tuple[Report, Path, Path]:
    if not Assets().available()["fashion-mnist"]:
        pytest.skip(
            "Fashion-MNIST not found; install the Debian package 'dataset-fashion-mnist' "
            "(scripts/setup.sh does) to enable this test."
        )
    root = tmp_path_factory.mktemp("evaluation")
    report = run_evaluation(
        _config(),
        TASKS,
        out_dir=root / "out",
        cache_dir=root / "cache",
        show_progress_bar=False,
        encoders={"lite0": image_encoder, "minilm": text_encoder},
    )
    return report, root / "out", root / "cache"


def test_every_task_ran(smoke: tuple[Report, Path, Path]) -> None:
    report, _, _ = smoke
    assert [r.name for r in report.results] == TASKS
    assert all(r.skipped is None for r in report.results), [r.skipped for r in report.results]


def test_library_path_and_numpy_recipe_give_identical_numbers(
    smoke: tuple[Report, Path, Path],
) -> None:
    report, _, _ = smoke
    for name in ("retrieval", "image", "zeroshot", "adjust"):
        detail = report.result(name).figures["library_vs_numpy"]
        for lib in ("csa", "hybrid"):  # compared too (asif's keys have no prefix)
            assert any(k.startswith(f"{lib}: ") for k in detail), (name, lib, detail)
        for key, agree in detail.items():
            if ":" not in key:  # ASIF: the same sparse vectors, every rank identical
                assert agree["differing"] == 0, (name, key, agree)
            else:  # CSA / hybrid: Qdrant's float32 dense scores may order near-ties otherwise
                assert agree["differing"] <= 0.05 * agree["queries"], (name, key, agree)
                assert agree["max_diff"] <= 0.03, (name, key, agree)
    ret = report.result("retrieval").figures["tuxpaint (48)"]
    img = report.result("image").figures["tuxpaint (48)"]
    assert ret["asif"] == ret["numpy"]  # every figure, bit for bit
    for variant, summ in img["asif"].items():  # (NaN != NaN: compare level by level)
        for level, figs in summ.items():
            if figs["queries"]:
                assert figs == img["numpy"][variant][level], (variant, level)
    assert set(img["asif"]) == {"intra", "caption-side", "inversion"}
    assert set(img["csa"]) == set(img["hybrid"]) == {"intra", "caption-side"}
    zs = report.result("zeroshot").figures
    compared = 0
    for per_pool in zs.values():
        if isinstance(per_pool, dict) and "tuxpaint (48)" in per_pool:
            compared += 1
            assert per_pool["tuxpaint (48)"]["asif"] == per_pool["tuxpaint (48)"]["numpy"]
    assert compared == 2  # Tux Paint categories and Fashion-MNIST
    adj = report.result("adjust").figures
    assert adj["asif"]["before"] == adj["numpy"]["before"]
    assert adj["asif"]["after"] == adj["numpy"]["after"]
    # The evaluation's own max-over-templates scoring agrees with ASIF.classify.
    assert zs["own_max_vs_classify"]["same_argmax"] is True
    assert zs["own_max_vs_classify"]["max_abs_diff"] < 1e-5


def test_better_than_chance_and_adjusting_helps(smoke: tuple[Report, Path, Path]) -> None:
    report, _, _ = smoke
    ret = report.result("retrieval").figures
    for direction in ("image->text", "text->image"):
        got = ret["tuxpaint (48)"]["asif"][direction]
        chance = ret["chance"][direction]
        assert got["R@5"] > chance["R@5"] + 0.1, (direction, got, chance)
        assert got["mean_rank"] < chance["mean_rank"]
    img = report.result("image").figures
    raw = img["raw cosine"]["category"]
    # 48 stamps in 3 folds: a stamp alone in its category within its fold is no query
    assert 20 < raw["queries"] <= 48 and raw["mAP"] > 0.2
    for method, variants in img["tuxpaint (48)"].items():
        for variant, summ in variants.items():
            assert 0.0 < summ["category"]["mAP"] <= 1.0, (method, variant)
    csa = report.result("csa").figures
    assert set(csa["compared"]) == {"ASIF", "CSA", "hybrid"}
    assert csa["advice"] and all(set(w) <= set(csa["compared"]) for w in csa["winners"].values())
    adj = report.result("adjust").figures["asif"]
    assert adj["after_mean"] > adj["before"] + 0.1, adj
    assert adj["after_delete"] == [adj["before"]] * 2  # deleting the pairs restores the model
    assert all(s < 30 for s in adj["edit_seconds"])


def test_report_files(smoke: tuple[Report, Path, Path]) -> None:
    _, out, _ = smoke
    md = (out / "RESULTS.md").read_text()
    data = json.loads((out / "results.json").read_text())
    assert "CPU cores" in md and "--task retrieval" in md and "wall time" in md
    assert data["config"]["quick"] is True and data["data"]["tuxpaint_test"] == 48
    assert data["encoders"]["lite0"]["name"] == "timm/tf_efficientnet_lite0"
    for png in ("eval_scaling.png", "eval_kp_heatmap.png"):
        assert (out / png).stat().st_size > 10_000
        assert f"]({png})" in md


def test_cli_second_run_reads_the_cache(smoke: tuple[Report, Path, Path], tmp_path: Path) -> None:
    report, _, cache = smoke
    result = CliRunner().invoke(
        evaluate,
        [
            "--quick", "--task", "retrieval", "--method", "asif", "--method", "numpy",
            "--fashion-per-class", "5", "--tuxpaint-limit", "48",
            "--cache-dir", str(cache), "--out", str(tmp_path), "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert all(e["encoded"] == 0 for e in data["encoders"].values()), data["encoders"]
    again = data["tasks"]["retrieval"]["figures"]["tuxpaint (48)"]["asif"]
    assert again == report.result("retrieval").figures["tuxpaint (48)"]["asif"]
    assert (tmp_path / "RESULTS.md").is_file()
