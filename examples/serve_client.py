"""A client of ``asif-qdrant serve``: search, explain and classify over HTTP (httpx), then
the same catalog through LangChain (``ASIFServiceRetriever``).

Start the service first, for example on the demo's model (``bash scripts/demo.sh`` builds it)::

    asif-qdrant serve --path asif-demo/model --name tuxpaint

then, in another shell::

    python examples/serve_client.py "A red apple."
    python examples/serve_client.py --image /usr/share/tuxpaint/stamps/animals/marsupials/koala.png
    ASIF_KEY=... python examples/serve_client.py --api-key-env ASIF_KEY "A cat."   # a keyed service

Every endpoint and its schema: ``http://127.0.0.1:8000/docs``; docs/SERVE.md.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import httpx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("query", nargs="?", default="A red apple.", help="a text query")
    parser.add_argument("--image", type=Path, help="search with this image instead")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--collection", default="stamps", help="the catalog")
    parser.add_argument("--api-key-env", help="the variable holding the service's API key")
    args = parser.parse_args()
    key = os.environ[args.api_key_env] if args.api_key_env else None
    headers = {"X-API-Key": key} if key else {}

    with httpx.Client(base_url=args.url, headers=headers, timeout=60) as client:
        info = client.get("/api/model").raise_for_status().json()
        print(f"model '{info['name']}': {info['anchor_count']} anchor pairs, {info['catalogs']}")
        base = f"/api/catalogs/{args.collection}"
        if args.image:
            files = {"image": (args.image.name, args.image.read_bytes())}
            found = client.post(f"{base}/search/image", files=files, data={"limit": "5"})
        else:
            found = client.post(f"{base}/search", json={"query": args.query, "limit": 5})
        hits = found.raise_for_status().json()["hits"]
        for hit in hits:
            print(f"{hit['score']:.3f}  {hit['payload'].get('caption', hit['id'])}")
        if hits and not args.image:  # why the best hit matches: the anchor pairs behind it
            body = {"query": args.query, "item_id": hits[0]["id"], "top": 3}
            why = client.post(f"{base}/explain", json=body).raise_for_status().json()
            for a in why["anchors"]:
                print(f"   {a['contribution']:.4f}  {a['caption']}")
        if args.image:
            labels = {"labels": "an animal,food,a vehicle,a person"}
            files = {"image": (args.image.name, args.image.read_bytes())}
            label = client.post("/api/classify", files=files, data=labels).raise_for_status()
            print("zero-shot:", label.json()["label"])

    # The same catalog as a LangChain retriever (pip install -e integrations/langchain).
    from langchain_asif_qdrant import ASIFServiceRetriever

    retriever = ASIFServiceRetriever(
        url=args.url, collection_name=args.collection, k=3, api_key=key
    )
    for doc in retriever.invoke(args.image or args.query):
        print("langchain:", doc.metadata["score"], doc.metadata.get("caption"), doc.page_content)


if __name__ == "__main__":
    main()
