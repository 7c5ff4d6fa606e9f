"""examples/multimodal_rag.py runs offline: the chain, main() in-process, and the script."""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from asif_qdrant import ASIF
from langchain_core.messages import HumanMessage, SystemMessage
from PIL import Image

from langchain_asif_qdrant import ASIFRetriever

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "multimodal_rag.py"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("multimodal_rag_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chain_retrieves_images_and_builds_the_multimodal_prompt(
    example: ModuleType, catalog_model: Callable[[str], ASIF], stamps
) -> None:
    retriever = ASIFRetriever(
        asif=catalog_model("edge"), collection_name="catalog", k=2, item_modality="image"
    )
    chain = example.build_chain(retriever, example.fake_chat_model())
    result = chain.invoke("A fire truck.")
    assert result["question"] == "A fire truck."
    assert [d.metadata["name"] for d in result["docs"]][:1] == ["firetruck"]
    system, human = result["messages"]
    assert isinstance(system, SystemMessage) and isinstance(human, HumanMessage)
    texts = [b["text"] for b in human.content if b["type"] == "text"]
    images = [b for b in human.content if b["type"] == "image"]
    assert texts[0].startswith("Question: A fire truck.")
    assert len(images) == 2 and all(b["mime_type"] == "image/png" for b in images)
    # the first image block is the retrieved fire truck, scaled down
    with Image.open(io.BytesIO(base64.b64decode(images[0]["base64"]))) as img:
        assert max(img.size) <= 256
        with Image.open(stamps.catalog["firetruck"]) as original:
            ratio = original.size[0] / original.size[1]
        assert img.size[0] / img.size[1] == pytest.approx(ratio, rel=0.05)
    assert "firetruck.png" in texts[1]
    assert result["answer"] == example.FAKE_ANSWER  # the fake chat model's canned reply


def test_main_runs_offline_in_process(
    example: ModuleType, tmp_path: Path, image_encoder, text_encoder, capsys
) -> None:
    """The whole example on a smaller anchor set, with the session's encoders."""
    argv = ["--path", str(tmp_path / "rag"), "--anchor-every", "80", "--k", "2", "A fire truck."]
    assert example.main(argv, image_encoder=image_encoder, text_encoder=text_encoder) == 0
    out = capsys.readouterr().out
    assert "question: A fire truck." in out
    photos = [line for line in out.splitlines() if line.startswith("photo ")]
    assert len(photos) == 2 and all(line.endswith(".png") for line in photos)
    assert "prompt: 2 messages, 2 image blocks" in out
    assert f"answer: {example.FAKE_ANSWER}" in out
    # a second run reuses the model folder
    assert example.main(argv, image_encoder=image_encoder, text_encoder=text_encoder) == 0
    assert capsys.readouterr().out == out


@pytest.mark.slow
def test_script_runs_offline_as_documented(tmp_path: Path) -> None:
    """``python examples/multimodal_rag.py`` with its defaults, Hugging Face hub off."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--path", str(tmp_path / "rag"), "A fire truck."],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "question: A fire truck."
    assert lines[1].startswith("photo 1:") and lines[1].endswith("firetruck.png")
    assert "prompt: 2 messages, 3 image blocks" in lines
    assert lines[-1].startswith("answer: [offline fake chat model")
