"""Zero-shot prompts that read right: articles, the default template, per-model templates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from asif_qdrant import ASIF, InvalidParameterError
from asif_qdrant.retriever.anchors import classify_kp
from asif_qdrant.retriever.fingerprint import DEFAULT_CLASSIFY_SPREAD, Fingerprint
from asif_qdrant.retriever.zeroshot import DEFAULT_TEMPLATES, article, prompt
from tests.conftest import HashTextEncoder

README_LABELS = ["an animal", "food", "a vehicle"]


@pytest.mark.parametrize(
    ("label", "want"),
    [
        *[(x, "a") for x in ["cat", "vehicle", "unicorn", "European car", "user", "DVD", "UFO"]],
        *[(x, "a") for x in ["one-way sign", "house", "Banana", "b"]],
        *[(x, "an") for x in ["animal", "apple", "owl", "Umbrella", "hour", "honest man"]],
        *[(x, "an") for x in ["heir", "unidentified object", "MRI scan", "SUV", "X-ray"]],
        *[(x, "") for x in ["an animal", "a vehicle", "The Moon", "this chair", "some food"]],
        *[(x, "") for x in ["my dog", "two cats", "3 cats", "Three bears", "", "   "]],
    ],
)
def test_article_follows_the_first_sound_or_is_none(label: str, want: str) -> None:
    assert article(label) == want


def test_the_readme_labels_read_right_with_the_default_template() -> None:
    assert DEFAULT_TEMPLATES == ("a photo of {a} {}.",)
    got = [prompt(DEFAULT_TEMPLATES[0], lab) for lab in [*README_LABELS, "apple", "hour"]]
    assert got == [
        "a photo of an animal.",
        "a photo of a food.",
        "a photo of a vehicle.",
        "a photo of an apple.",
        "a photo of an hour.",
    ]


@pytest.mark.parametrize("template", ["a picture of {}.", "a photo of a {}.", "{}", "{} x {{}}"])
def test_templates_without_an_article_slot_are_used_exactly_as_written(template: str) -> None:
    for lab in [*README_LABELS, "apple", "the moon"]:
        assert prompt(template, lab) == template.format(lab)
        assert prompt(template.replace("{}", "{label}", 1), lab) == template.format(lab)


def _model(path: Path, **kwargs) -> ASIF:
    return ASIF(
        path=path,
        k=3,
        image_encoder="precomputed/image",
        text_encoder=HashTextEncoder(),
        show_progress_bar=False,
        **kwargs,
    )


def _stored_prompts(asif: ASIF) -> set[str]:
    """Every prompt in the model's cached label collections."""
    m = asif.state
    colls = [c for c in m.store.list_collections() if c.startswith(m.layout.labels_prefix)]
    return {str(r.payload["prompt"]) for c in colls for r in m.store.scroll(c)}


def _anchor(asif: ASIF, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    captions = [f"caption {i}" for i in range(6)]
    asif.add_anchor_embeddings(
        rng.random((6, 8)), HashTextEncoder().embed(captions), payloads=[{}] * 6
    )
    return asif.relative_from_embeddings(rng.random((2, 8)), "image")


def test_classify_stores_the_grammatical_default_prompts(tmp_path: Path) -> None:
    with _model(tmp_path) as asif:
        vecs = _anchor(asif)
        asif.classify(vecs, README_LABELS)
        assert _stored_prompts(asif) == {
            "a photo of an animal.",
            "a photo of a food.",
            "a photo of a vehicle.",
        }


def test_explicit_templates_give_the_same_prompts_and_scores_as_before(tmp_path: Path) -> None:
    with _model(tmp_path) as asif:
        vecs = _anchor(asif)
        scores = asif.classify_scores(vecs, README_LABELS, templates=["a picture of {}."])
        assert _stored_prompts(asif) == {f"a picture of {lab}." for lab in README_LABELS}
        # The same prompts given as labels of the bare template "{}" score the same.
        bare = asif.classify_scores(
            vecs, [f"a picture of {lab}." for lab in README_LABELS], templates=["{}"]
        )
        np.testing.assert_allclose(scores, bare, atol=1e-6)


def test_model_templates_persist_across_reopen_and_are_used_by_classify(tmp_path: Path) -> None:
    mine = ["a drawing of {a} {}.", "{label}"]
    with _model(tmp_path, templates=mine) as asif:
        vecs = _anchor(asif)
        assert asif.fingerprint.templates == mine
    with _model(tmp_path) as asif:  # reopened without templates: the stored ones
        assert asif.fingerprint.templates == mine
        got = asif.classify_scores(vecs, README_LABELS, template_strategy="max")
        assert _stored_prompts(asif) == {
            *README_LABELS,
            "a drawing of an animal.",
            "a drawing of a food.",
            "a drawing of a vehicle.",
        }
        same = asif.classify_scores(vecs, README_LABELS, templates=mine, template_strategy="max")
        np.testing.assert_allclose(got, same, atol=1e-6)
        asif.classify(vecs, README_LABELS, templates=["a picture of {}."])
        assert "a picture of a vehicle." in _stored_prompts(asif)  # the call's own win
    with _model(tmp_path, templates=["a sketch of {}."]) as asif:  # replaced, written now
        pass
    with _model(tmp_path) as asif:
        assert asif.fingerprint.templates == ["a sketch of {}."]
    with _model(tmp_path, templates=[]):  # [] goes back to the library default
        pass
    with _model(tmp_path) as asif:
        assert asif.fingerprint.templates is None
        asif.classify(vecs, README_LABELS)
        assert "a photo of an animal." in _stored_prompts(asif)


def test_model_templates_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match=r"template of ASIF must.*'\{\}'.*\{a\}"):
        _model(tmp_path, templates=["a photo"])


def test_old_fingerprints_load_without_templates() -> None:
    old = Fingerprint(image_encoder="i", text_encoder="t").as_payload()
    del old["templates"]
    assert Fingerprint.from_payload(old).templates is None


def test_cli_template_help_names_the_article_slot() -> None:
    from asif_qdrant.cli import main

    out = CliRunner().invoke(main, ["classify", "--help"])
    assert out.exit_code == 0
    assert "{a}" in out.output and "a photo of {a} {}." in " ".join(out.output.split())


def test_classify_k_p_and_spread_persist_across_reopen(tmp_path: Path) -> None:
    with _model(tmp_path, classify_k=2, classify_p=3.0) as asif:
        vecs = _anchor(asif)
        before = asif.classify_scores(vecs, README_LABELS)
    with _model(tmp_path) as asif:  # reopened without them: the stored ones
        assert (asif.fingerprint.classify_k, asif.fingerprint.classify_p) == (2, 3.0)
        np.testing.assert_allclose(asif.classify_scores(vecs, README_LABELS), before, atol=1e-6)
    with _model(tmp_path, classify_k=3, classify_spread=0.5):  # k: the model's own, unset
        pass
    with _model(tmp_path) as asif:  # a spread replaces the stored p
        fp = asif.fingerprint
        assert (fp.classify_k, fp.classify_p, fp.classify_spread) == (None, None, 0.5)
    with _model(tmp_path, classify_p=8.0):  # the paper's classification, stored as given
        pass
    with _model(tmp_path) as asif:
        fp = asif.fingerprint
        assert (fp.classify_p, fp.classify_spread) == (8.0, 0.5)
        assert classify_kp(asif.state) == (3, 8.0)


def test_stores_written_before_the_spread_rule_get_it() -> None:
    old = Fingerprint("a", "b").as_payload()
    del old["classify_spread"]
    fp = Fingerprint.from_payload(old)
    assert fp.classify_spread == DEFAULT_CLASSIFY_SPREAD and fp.classify_p is None
