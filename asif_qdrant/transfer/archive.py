"""The export file format: a tar stream of a manifest, ``.npz`` batches and an end record.

``asif_qdrant.transfer`` moves models; this module only reads and writes its files. A file is
``manifest.json`` (format, version, fingerprint, the collections), then one ``.npz`` per batch
under ``data/NNN-<collection>/``, then ``end.json`` (the counts and each part's SHA-256).
Readers stream it member by member and never unpack more than ``max_member_bytes`` at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asif_qdrant.errors import InvalidInputError, InvalidParameterError, StoreError
from asif_qdrant.retriever.fingerprint import Fingerprint
from asif_qdrant.retriever.layout import Layout
from asif_qdrant.store.base import CollectionSpec, Record
from asif_qdrant.types import SparseVector
from asif_qdrant.version import __version__

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "FileSink",
    "FileSource",
    "Plan",
    "check_manifest",
    "check_unpacked",
    "decode_batch",
    "encode_batch",
    "manifest",
]


#: The ``format`` field of an export's manifest.
EXPORT_FORMAT = "asif-qdrant-export"
#: Version of the export layout; readers refuse newer ones.
EXPORT_VERSION = 1


@dataclass(frozen=True)
class Plan:
    """One collection to move."""

    name: str
    role: str  # "catalog", "image_anchors", "text_anchors" or "meta"
    spec: CollectionSpec
    count: int

    def dest(self, model: str) -> str:
        """The collection this one becomes in model ``model`` (catalogs keep their name)."""
        return self.name if self.role == "catalog" else Layout(model).role(self.role)

    def as_dict(self) -> dict[str, Any]:
        """The plan as the manifest records it."""
        return {
            "name": self.name,
            "role": self.role,
            "spec": self.spec.as_dict(),
            "count": self.count,
        }


def manifest(name: str, fp: Fingerprint, plans: Sequence[Plan]) -> dict[str, Any]:
    """The manifest of an export of model ``name``."""
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "library": f"asif-qdrant {__version__}",
        "model": name,
        "fingerprint": fp.as_payload(),
        "collections": [p.as_dict() for p in plans],
    }


class FileSource:
    """Reads a model from an export file, member by member (a tar stream)."""

    def __init__(self, path: Path, max_member_bytes: int = 256 * 2**20) -> None:
        self.path = path
        self.max_member_bytes = max_member_bytes
        self.digests: dict[str, str] = {}
        try:
            self._tar = tarfile.open(str(path), mode="r|*")  # noqa: SIM115 - closed by close()
        except (OSError, tarfile.TarError) as e:
            raise InvalidInputError(f"Cannot read the export file {path}: {e}") from e
        self._pending: tarfile.TarInfo | None = None
        first = self._next()
        if first is None or first.name != "manifest.json":
            self.close()
            raise InvalidInputError(
                f"{path} is not an asif-qdrant export: its first member is "
                f"{first.name if first else 'missing'!r}, not 'manifest.json'."
            )
        self.manifest = check_manifest(json.loads(self._read(first)), path)
        self.plans = [
            Plan(c["name"], c["role"], CollectionSpec.from_dict(c["spec"]), int(c["count"]))
            for c in self.manifest["collections"]
        ]

    def _next(self) -> tarfile.TarInfo | None:
        if self._pending is not None:
            member, self._pending = self._pending, None
            return member
        try:
            return self._tar.next()
        except (OSError, EOFError, tarfile.TarError) as e:
            raise InvalidInputError(f"The export file {self.path} is damaged: {e}") from e

    def _read(self, member: tarfile.TarInfo) -> bytes:
        if member.size > self.max_member_bytes:
            raise InvalidInputError(
                f"The export file {self.path} has a part {member.name!r} of {member.size} bytes "
                f"unpacked; at most {self.max_member_bytes} are read into memory "
                "(max_member_bytes). Nothing was written."
            )
        f = self._tar.extractfile(member)
        if f is None:
            raise InvalidInputError(f"{self.path}: member {member.name!r} is not a file.")
        try:
            data = f.read()
        except (OSError, EOFError, tarfile.TarError) as e:
            raise InvalidInputError(f"The export file {self.path} is damaged: {e}") from e
        check_unpacked(data, member.name, self.max_member_bytes, self.path)
        self.digests[member.name] = hashlib.sha256(data).hexdigest()
        return data

    def batches(self, plan: Plan) -> Iterator[list[Record]]:
        """The records of ``plan``'s collection, batch by batch; checks their count."""
        index = self.plans.index(plan)
        prefix = f"data/{index:03d}-"
        seen = 0
        while True:
            member = self._next()
            if member is None or not member.name.startswith(prefix):
                self._pending = member
                break
            batch = decode_batch(self._read(member), plan, self.path)
            seen += len(batch)
            yield batch
        if seen != plan.count:
            raise InvalidInputError(
                f"The export file {self.path} is truncated or damaged: it holds {seen} of the "
                f"{plan.count} points of '{plan.name}'. Nothing was replaced."
            )

    def finish(self) -> dict[str, int]:
        """Reads ``end.json``, checks every part's SHA-256 and returns the counts."""
        member = self._next()
        if member is None or member.name != "end.json":
            raise InvalidInputError(
                f"The export file {self.path} is truncated or damaged: expected 'end.json', "
                f"found {member.name if member else 'the end of the file'!r}."
            )
        end = json.loads(self._read(member))
        for part, digest in end.get("sha256", {}).items():
            if self.digests.get(part) != digest:
                raise InvalidInputError(
                    f"The export file {self.path} is damaged: the checksum of {part!r} "
                    "differs from the one recorded at export. Nothing was written."
                )
        return dict(end["counts"])

    def close(self) -> None:
        """Closes the file."""
        self._tar.close()


def check_unpacked(data: bytes, name: str, limit: int, path: Path) -> None:
    """A batch (``.npz``, a zip) must not unpack beyond ``limit`` bytes either."""
    if not name.endswith(".npz"):
        return
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            size = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise InvalidInputError(f"A batch {name!r} in {path} is damaged: {e}") from e
    if size > limit:
        raise InvalidInputError(
            f"The export file {path} has a batch {name!r} that unpacks to {size} bytes; at "
            f"most {limit} are read into memory (max_member_bytes). Nothing was written."
        )


def check_manifest(data: Any, path: Path) -> dict[str, Any]:
    """``data`` if it is a manifest this version reads, else :class:`InvalidInputError`."""
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise InvalidInputError(f"{path} is not an asif-qdrant export (no '{EXPORT_FORMAT}').")
    version = data.get("version")
    if not isinstance(version, int) or version > EXPORT_VERSION:
        raise InvalidInputError(
            f"{path} has export version {version!r}; this asif-qdrant reads versions up to "
            f"{EXPORT_VERSION}. Upgrade asif-qdrant to import it."
        )
    Fingerprint.from_payload(data["fingerprint"])
    return data


class FileSink:
    """Writes a model into an export file (written beside it, then renamed into place)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        gz = path.name.endswith((".gz", ".tgz"))
        try:
            self._tar = tarfile.open(str(self.partial), mode="w|gz" if gz else "w|")  # noqa: SIM115
        except OSError as e:
            raise InvalidParameterError(
                f"The 'out' parameter of export_model must be a writable file path. Got "
                f"{str(path)!r} instead ({e})."
            ) from e
        self.counts: dict[str, int] = {}
        self.digests: dict[str, str] = {}
        self._plans: list[Plan] = []

    def _add(self, name: str, data: bytes) -> None:
        self.digests[name] = hashlib.sha256(data).hexdigest()
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = int(time.time())
        self._tar.addfile(info, io.BytesIO(data))

    def begin_manifest(self, manifest: Mapping[str, Any], plans: Sequence[Plan]) -> None:
        """Writes the manifest, first member of the file."""
        self._plans = list(plans)
        self._add("manifest.json", json.dumps(manifest, indent=1).encode())

    def write(self, plan: Plan, batches: Iterator[list[Record]], bar: Any) -> None:
        """Writes ``plan``'s collection, one ``.npz`` member per batch."""
        index = self._plans.index(plan)
        written = 0
        for n, batch in enumerate(batches):
            self._add(f"data/{index:03d}-{plan.name}/{n:06d}.npz", encode_batch(batch, plan))
            written += len(batch)
            bar.update(len(batch))
        self.counts[plan.name] = written

    def end(self) -> None:
        """Writes ``end.json`` (counts, checksums) and renames the file into place."""
        end = {"counts": self.counts, "sha256": self.digests}
        self._add("end.json", json.dumps(end).encode())
        self._tar.close()
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        """Removes the partial file."""
        with contextlib.suppress(Exception):  # already failing: the partial file goes anyway
            self._tar.close()
        self.partial.unlink(missing_ok=True)


# -- batch encoding ------------------------------------------------------------------------------
def encode_batch(records: Sequence[Record], plan: Plan) -> bytes:
    """One batch as an ``.npz``: ids and payloads as JSON, vectors as exact float32 arrays."""
    n = len(records)
    dense_names, sparse_names = sorted(plan.spec.dense), sorted(plan.spec.sparse)
    meta = {
        "ids": [r.id for r in records],
        "payloads": [r.payload for r in records],
        "dense": dense_names,
        "sparse": sparse_names,
    }
    arrays: dict[str, np.ndarray] = {
        "json": np.frombuffer(json.dumps(meta, ensure_ascii=False).encode(), dtype=np.uint8)
    }
    for j, vn in enumerate(dense_names):
        dim = plan.spec.dense[vn]
        mat = np.zeros((n, dim), np.float32)
        mask = np.zeros(n, bool)
        for i, r in enumerate(records):
            v = r.dense.get(vn)
            if v is not None:
                v = np.asarray(v, dtype=np.float32).reshape(-1)
                if v.size != dim:
                    raise StoreError(
                        f"Point {r.id!r} of '{plan.name}' has a '{vn}' vector of dim {v.size}; "
                        f"the collection's is {dim}."
                    )
                mat[i], mask[i] = v, True
        arrays[f"dense_{j}"], arrays[f"dense_{j}_mask"] = mat, mask
    for j, vn in enumerate(sparse_names):
        vecs = [r.sparse.get(vn) for r in records]
        lengths = np.array([0 if v is None else len(v) for v in vecs], dtype=np.int64)
        present = [v for v in vecs if v is not None]
        arrays[f"sparse_{j}_indptr"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        arrays[f"sparse_{j}_indices"] = (
            np.concatenate([v.indices for v in present]) if present else np.zeros(0, np.uint64)
        ).astype(np.uint64)
        arrays[f"sparse_{j}_values"] = (
            np.concatenate([v.values for v in present]) if present else np.zeros(0, np.float32)
        ).astype(np.float32)
        arrays[f"sparse_{j}_mask"] = np.array([v is not None for v in vecs], dtype=bool)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def decode_batch(data: bytes, plan: Plan, path: Path) -> list[Record]:
    """The records of one ``.npz`` batch written by :func:`encode_batch`."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            meta = json.loads(z["json"].tobytes().decode())
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError) as e:
        raise InvalidInputError(f"A batch of '{plan.name}' in {path} is damaged: {e}") from e
    records = [
        Record(id=pid, payload=dict(payload))
        for pid, payload in zip(meta["ids"], meta["payloads"], strict=True)
    ]
    for j, vn in enumerate(meta["dense"]):
        mat, mask = arrays[f"dense_{j}"], arrays[f"dense_{j}_mask"]
        for i, rec in enumerate(records):
            if mask[i]:
                rec.dense[vn] = mat[i]
    for j, vn in enumerate(meta["sparse"]):
        indptr = arrays[f"sparse_{j}_indptr"]
        indices, values = arrays[f"sparse_{j}_indices"], arrays[f"sparse_{j}_values"]
        mask = arrays[f"sparse_{j}_mask"]
        for i, rec in enumerate(records):
            if mask[i]:
                lo, hi = int(indptr[i]), int(indptr[i + 1])
                rec.sparse[vn] = SparseVector(indices=indices[lo:hi], values=values[lo:hi])
    return records
