from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from asif_qdrant.errors import InvalidInputError, InvalidParameterError
from asif_qdrant.loaders import (
    TUXPAINT_STAMPS_DIR,
    Pair,
    load_csv,
    load_folder,
    load_jsonl,
    load_tuxpaint_stamps,
    split_pairs,
)


def _png(path: Path, color: str = "red", mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (8, 8), color).save(path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "pairs"
    _png(root / "b.png")
    (root / "b.txt").write_text("\n\n   A blue thing.  \nsecond line\n", encoding="utf-8")
    _png(root / "animals" / "cat.jpg", mode="RGB")
    (root / "animals" / "cat.txt").write_text("A cat.", encoding="utf-8")
    _png(root / "animals" / "mammals" / "dog.PNG")
    (root / "animals" / "mammals" / "dog.txt").write_text("\ufeffA dog.\n", encoding="utf-8")
    _png(root / "animals" / "no_caption.png")
    _png(root / "animals" / "empty.png")
    (root / "animals" / "empty.txt").write_text("  \n\n", encoding="utf-8")
    (root / "notes.txt").write_text("not an image caption", encoding="utf-8")
    return root


# ------------------------------------------------------------------------------------------
# Pair
# ------------------------------------------------------------------------------------------


def test_pair_payload_and_hash() -> None:
    meta = {"category": "animals", "caption": "x"}
    pair = Pair("/x/koala.png", "A koala.", "tuxpaint", meta)
    meta["category"] = "changed"  # the pair keeps its own copy
    assert pair.payload() == {
        "category": "animals",
        "caption": "A koala.",
        "image": "/x/koala.png",
        "source": "tuxpaint",
    }
    same = Pair("/x/koala.png", "A koala.", "tuxpaint", {"category": "animals", "caption": "x"})
    assert pair == same and hash(pair) == hash(same)
    assert len({pair, same}) == 1
    with pytest.raises(AttributeError):
        pair.caption = "no"  # type: ignore[misc]


# ------------------------------------------------------------------------------------------
# load_folder
# ------------------------------------------------------------------------------------------


def test_load_folder(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asif_qdrant.loaders"):
        pairs = load_folder(folder)
    assert [p.metadata["relpath"] for p in pairs] == [
        "animals/cat.jpg",
        "animals/mammals/dog.PNG",
        "b.png",
    ]
    assert [p.caption for p in pairs] == ["A cat.", "A dog.", "A blue thing."]
    assert all(Path(p.image).is_absolute() and Path(p.image).is_file() for p in pairs)
    assert pairs[0].metadata["category"] == "animals"
    assert pairs[1].metadata["category"] == "animals"
    assert "category" not in pairs[2].metadata
    assert {p.source for p in pairs} == {str(folder.resolve())}
    assert "skipped 1 image(s) without" in caplog.text
    assert "1 with an empty one" in caplog.text


def test_load_folder_non_recursive_and_extensions(folder: Path) -> None:
    assert [p.caption for p in load_folder(folder, recursive=False)] == ["A blue thing."]
    assert [p.caption for p in load_folder(folder, extensions=("jpg",))] == ["A cat."]


def test_load_folder_is_deterministic(folder: Path) -> None:
    assert load_folder(folder) == load_folder(str(folder))


def test_load_folder_missing_root(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(InvalidInputError, match=re.escape(f"{missing} does not exist")):
        load_folder(missing)
    file = _png(tmp_path / "a.png")
    with pytest.raises(InvalidInputError, match="is not a folder"):
        load_folder(file)


def test_load_folder_no_pairs(tmp_path: Path) -> None:
    _png(tmp_path / "lonely.png")
    with pytest.raises(InvalidInputError, match=r"No image-caption pairs found.*same-name \.txt"):
        load_folder(tmp_path)


def test_load_folder_bad_parameters(folder: Path) -> None:
    with pytest.raises(InvalidParameterError, match="'extensions' parameter of load_folder"):
        load_folder(folder, extensions=())


def test_load_folder_bad_utf8(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    (tmp_path / "a.txt").write_bytes(b"\xff\xfe\xfa bad")
    with pytest.raises(InvalidInputError, match="not valid UTF-8"):
        load_folder(tmp_path)


# ------------------------------------------------------------------------------------------
# load_csv / load_jsonl
# ------------------------------------------------------------------------------------------


@pytest.fixture
def table_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    _png(root / "img" / "cat.png")
    _png(root / "img" / "dog.png")
    _png(tmp_path / "outside.png")
    return root


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_load_csv(table_root: Path) -> None:
    csv_path = _write_csv(
        table_root / "pairs.csv",
        'image,caption,category\nimg/cat.png,A cat.,animals\nimg/dog.png,"A dog,\n big.",pets\n',
    )
    pairs = load_csv(csv_path)
    assert [p.caption for p in pairs] == ["A cat.", "A dog, big."]
    assert pairs[0].image == str((table_root / "img" / "cat.png").resolve())
    assert pairs[0].metadata == {"category": "animals", "relpath": "img/cat.png"}
    assert pairs[1].source == str(csv_path.resolve())
    assert load_csv(csv_path) == pairs


def test_load_csv_custom_columns_and_root(tmp_path: Path, table_root: Path) -> None:
    csv_path = _write_csv(
        tmp_path / "elsewhere.csv", "file;text\nimg/cat.png;x\n".replace(";", ",")
    )
    pairs = load_csv(csv_path, root=table_root, image_column="file", caption_column="text")
    assert [p.caption for p in pairs] == ["x"]
    # An absolute path inside the root is fine.
    absolute = str((table_root / "img" / "dog.png").resolve())
    csv2 = _write_csv(table_root / "abs.csv", f"image,caption\n{absolute},A dog.\n")
    assert load_csv(csv2)[0].image == absolute


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("file,caption\nimg/cat.png,A cat.\n", r"no 'image' column \(image_column\)"),
        ("image,text\nimg/cat.png,A cat.\n", r"no 'caption' column \(caption_column\)"),
        ("", "empty"),
        ("image,caption\n", "no data rows"),
        ("image,caption\nimg/cat.png,A cat.\nimg/dog.png,  \n", r"row 2 \(line 3\).*caption"),
        ("image,caption\n,A cat.\n", r"row 1 \(line 2\).*image path"),
        ("image,caption\nimg/cat.png\n", r"row 1 \(line 2\).*caption"),
        ("image,caption\nimg/cat.png,A cat.,extra\n", r"row 1 \(line 2\).*more fields"),
        ("image,caption\nimg/cat.png,A.\nimg/none.png,B.\n", r"row 2 .*'img/none.png' does not"),
        (
            "image,caption\n../outside.png,A cat.\n",
            r"row 1 .*'\.\./outside\.png'.*outside the root",
        ),
        ("image,caption\nimg/../../outside.png,A.\n", r"row 1 .*outside the root"),
    ],
)
def test_load_csv_errors(table_root: Path, text: str, message: str) -> None:
    csv_path = _write_csv(table_root / "bad.csv", text)
    with pytest.raises(InvalidInputError, match=message):
        load_csv(csv_path)


def test_load_csv_refuses_absolute_path_outside_root(tmp_path: Path, table_root: Path) -> None:
    outside = str((tmp_path / "outside.png").resolve())
    csv_path = _write_csv(table_root / "bad.csv", f"image,caption\nimg/cat.png,A.\n{outside},B.\n")
    with pytest.raises(InvalidInputError, match=rf"row 2 .*{re.escape(outside)}.*outside the root"):
        load_csv(csv_path)


def test_load_csv_refuses_symlink_outside_root(tmp_path: Path, table_root: Path) -> None:
    link = table_root / "img" / "sneaky.png"
    try:
        os.symlink(tmp_path / "outside.png", link)
    except (OSError, NotImplementedError):  # pragma: no cover - e.g. Windows without rights
        pytest.skip("symlinks are not available on this file system")
    csv_path = _write_csv(table_root / "bad.csv", "image,caption\nimg/sneaky.png,A.\n")
    with pytest.raises(InvalidInputError, match=r"row 1 .*'img/sneaky\.png'.*outside the root"):
        load_csv(csv_path)
    # A symlink that stays inside the root is fine.
    os.symlink(table_root / "img" / "cat.png", table_root / "img" / "alias.png")
    csv_ok = _write_csv(table_root / "ok.csv", "image,caption\nimg/alias.png,A.\n")
    assert load_csv(csv_ok)[0].image == str((table_root / "img" / "cat.png").resolve())


def test_load_csv_missing_file_and_root(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"load_csv: .*missing\.csv does not exist"):
        load_csv(tmp_path / "missing.csv")
    csv_path = _write_csv(tmp_path / "p.csv", "image,caption\n")
    with pytest.raises(InvalidInputError, match=r"root folder .* does not exist"):
        load_csv(csv_path, root=tmp_path / "nowhere")


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_jsonl(table_root: Path) -> None:
    path = _write_jsonl(
        table_root / "pairs.jsonl",
        [
            {"image": "img/cat.png", "caption": " A cat. ", "tags": ["pet"], "n": 3},
            "",
            {"image": "img/dog.png", "caption": "A dog."},
        ],
    )
    pairs = load_jsonl(path)
    assert [p.caption for p in pairs] == ["A cat.", "A dog."]
    assert pairs[0].metadata == {"tags": ["pet"], "n": 3, "relpath": "img/cat.png"}
    assert pairs[1].image == str((table_root / "img" / "dog.png").resolve())
    custom = _write_jsonl(table_root / "c.jsonl", [{"path": "img/cat.png", "text": "A cat."}])
    assert load_jsonl(custom, image_key="path", caption_key="text")[0].caption == "A cat."


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"caption": "A cat."}], r"row 1 \(line 1\): no 'image' key \(image_key\)"),
        ([{"image": "img/cat.png"}], r"row 1 \(line 1\): no 'caption' key \(caption_key\)"),
        (["", {"image": "img/cat.png", "caption": ""}], r"row 1 \(line 2\).*caption"),
        ([{"image": "img/cat.png", "caption": 3}], r"row 1 .*caption.*Got 3"),
        ([{"image": None, "caption": "A."}], r"row 1 .*image path"),
        (["[1, 2]"], r"row 1 .*expected a JSON object, got list"),
        (["{not json"], r"row 1 .*not valid JSON"),
        ([{"image": "img/x.png", "caption": "A."}], r"row 1 .*'img/x\.png' does not exist"),
        ([{"image": "../outside.png", "caption": "A."}], r"row 1 .*outside the root"),
        ([""], "holds no JSON objects"),
    ],
)
def test_load_jsonl_errors(table_root: Path, rows: list[object], message: str) -> None:
    path = _write_jsonl(table_root / "bad.jsonl", rows)
    with pytest.raises(InvalidInputError, match=message):
        load_jsonl(path)


def test_load_jsonl_refuses_absolute_and_symlink(tmp_path: Path, table_root: Path) -> None:
    outside = str((tmp_path / "outside.png").resolve())
    path = _write_jsonl(table_root / "abs.jsonl", [{"image": outside, "caption": "A."}])
    with pytest.raises(InvalidInputError, match=rf"row 1 .*{re.escape(outside)}.*outside the root"):
        load_jsonl(path)
    try:
        os.symlink(tmp_path, table_root / "up")
    except (OSError, NotImplementedError):  # pragma: no cover
        pytest.skip("symlinks are not available on this file system")
    path = _write_jsonl(table_root / "link.jsonl", [{"image": "up/outside.png", "caption": "A."}])
    with pytest.raises(InvalidInputError, match="outside the root"):
        load_jsonl(path)


# ------------------------------------------------------------------------------------------
# Tux Paint
# ------------------------------------------------------------------------------------------


def test_load_tuxpaint_fake_tree(tmp_path: Path) -> None:
    root = tmp_path / "stamps"
    _png(root / "animals" / "marsupials" / "koala.png", mode="RGBA")
    (root / "animals" / "marsupials" / "koala.txt").write_text(
        "A koala.\nes.utf8=Un koala.\nfr.utf8=Un koala.\n", encoding="utf-8"
    )
    _png(root / "animals" / "marsupials" / "koala_mirror.png")  # no .txt: skipped
    _png(root / "food" / "pizza.png")
    (root / "food" / "pizza.txt").write_text("A pizza.\n", encoding="utf-8")
    (root / "food" / "pie.svg").write_text("<svg/>", encoding="utf-8")
    (root / "food" / "pie.txt").write_text("A pie.\n", encoding="utf-8")
    pairs = load_tuxpaint_stamps(root)
    assert [(p.caption, p.metadata["category"], p.metadata["subcategory"]) for p in pairs] == [
        ("A koala.", "animals", "marsupials"),
        ("A pizza.", "food", ""),
    ]
    assert {p.source for p in pairs} == {"tuxpaint"}
    with_svg = load_tuxpaint_stamps(root, include_svg=True)
    assert [p.metadata["relpath"] for p in with_svg] == [
        "animals/marsupials/koala.png",
        "food/pie.svg",
        "food/pizza.png",
    ]
    assert with_svg[1].metadata["format"] == "svg"


def test_load_tuxpaint_missing(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="apt-get install tuxpaint-stamps-default"):
        load_tuxpaint_stamps(tmp_path / "nope")
    with pytest.raises(InvalidInputError, match="No captioned Tux Paint stamps"):
        load_tuxpaint_stamps(tmp_path)


@pytest.mark.skipif(
    not Path(TUXPAINT_STAMPS_DIR).is_dir(),
    reason="Tux Paint stamps are not installed; run `apt-get install tuxpaint-stamps-default`.",
)
def test_load_tuxpaint_real_stamps() -> None:
    pairs = load_tuxpaint_stamps()
    categories = Counter(p.metadata["category"] for p in pairs)
    assert len(pairs) >= 700
    assert len(categories) >= 15
    assert {"animals", "symbols", "food", "vehicles"} <= set(categories)
    koala = next(p for p in pairs if p.metadata["relpath"] == "animals/marsupials/koala.png")
    assert koala.caption == "A koala."
    assert koala.metadata["subcategory"] == "marsupials"
    # The English caption, never a translation line.
    assert not any(re.match(r"^[a-z]{2,3}(_[A-Z]{2})?\.utf8=", p.caption) for p in pairs)
    assert all(p.caption and Path(p.image).is_file() for p in pairs)
    assert len({p.image for p in pairs}) == len(pairs)
    assert pairs == load_tuxpaint_stamps()
    anchors, held_out = split_pairs(pairs, test_fraction=0.5, seed=0)
    assert abs(len(anchors) - len(held_out)) <= 1
    assert {p.metadata["category"] for p in held_out} == set(categories)


# ------------------------------------------------------------------------------------------
# split_pairs
# ------------------------------------------------------------------------------------------


def _pairs(sizes: dict[str | None, int]) -> list[Pair]:
    out = []
    for category, n in sizes.items():
        for i in range(n):
            meta = {} if category is None else {"category": category}
            out.append(Pair(f"/img/{category}/{i}.png", f"{category} {i}", "test", meta))
    return out


def test_split_pairs_stratified_and_disjoint() -> None:
    pairs = _pairs({"a": 10, "b": 3, "c": 2, "d": 1, None: 4})
    anchors, held_out = split_pairs(pairs, test_fraction=0.3, seed=1)
    assert set(anchors).isdisjoint(held_out)
    assert sorted(anchors + held_out, key=pairs.index) == pairs
    for category in ("a", "b", "c"):
        assert any(p.metadata.get("category") == category for p in anchors)
        assert any(p.metadata.get("category") == category for p in held_out)
    assert all(p.metadata.get("category") != "d" for p in held_out)  # a lone pair -> anchors
    # Order is kept on both sides.
    assert anchors == sorted(anchors, key=pairs.index)
    assert held_out == sorted(held_out, key=pairs.index)
    assert len(held_out) == round(19 * 0.3)


def test_split_pairs_deterministic() -> None:
    pairs = _pairs({"a": 20, "b": 7})
    assert split_pairs(pairs, seed=3) == split_pairs(pairs, seed=3)
    assert split_pairs(pairs, seed=3) != split_pairs(pairs, seed=4)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, float("nan"), "0.5", True, None])
def test_split_pairs_bad_fraction(fraction: object) -> None:
    with pytest.raises(
        InvalidParameterError,
        match=re.escape("The 'test_fraction' parameter of split_pairs must be a float in the"),
    ):
        split_pairs(_pairs({"a": 4}), test_fraction=fraction)  # type: ignore[arg-type]


def test_split_pairs_bad_seed() -> None:
    with pytest.raises(InvalidParameterError, match="The 'seed' parameter of split_pairs"):
        split_pairs(_pairs({"a": 4}), seed=1.5)  # type: ignore[arg-type]


def test_split_pairs_empty() -> None:
    assert split_pairs([]) == ([], [])


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=6),
    fraction=st.floats(min_value=0.01, max_value=0.99),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_split_pairs_properties(sizes: list[int], fraction: float, seed: int) -> None:
    pairs = _pairs({f"c{i}": n for i, n in enumerate(sizes)})
    anchors, held_out = split_pairs(pairs, test_fraction=fraction, seed=seed)
    # Disjoint, and the union is the input (as a multiset, in order).
    assert set(anchors).isdisjoint(held_out)
    assert len(anchors) + len(held_out) == len(pairs)
    assert sorted(anchors + held_out, key=pairs.index) == pairs
    # Each category with >= 2 pairs is on both sides; a lone pair is an anchor.
    held_counts = Counter(p.metadata["category"] for p in held_out)
    for i, n in enumerate(sizes):
        k = held_counts.get(f"c{i}", 0)
        assert (1 <= k <= n - 1) if n >= 2 else k == 0
    # The held-out total is round(m * fraction) whenever the per-category bounds allow it.
    eligible = [n for n in sizes if n >= 2]
    target = int(sum(eligible) * fraction + 0.5)
    target = min(max(target, len(eligible)), sum(n - 1 for n in eligible))
    assert len(held_out) == target
    # Deterministic.
    assert split_pairs(pairs, test_fraction=fraction, seed=seed) == (anchors, held_out)


def test_load_folder_names_the_images_without_a_caption(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _png(tmp_path / "lonely.png")
    with pytest.raises(InvalidInputError, match=r"caption: lonely\.png \(no lonely\.txt\)"):
        load_folder(tmp_path)
    _png(tmp_path / "cat.png")
    (tmp_path / "cat.txt").write_text("A cat.")
    _png(tmp_path / "blank.png")
    (tmp_path / "blank.txt").write_text("\n")
    with caplog.at_level(logging.WARNING):
        assert [p.caption for p in load_folder(tmp_path)] == ["A cat."]
    assert "lonely.png (no lonely.txt)" in caplog.text
    assert "blank.png (blank.txt is empty)" in caplog.text
    (tmp_path / "cat.txt").write_bytes(b"\xff\xfe\xfa bad")
    with pytest.raises(InvalidInputError, match=r"The caption of the image .*cat\.png: .*UTF-8"):
        load_folder(tmp_path)


@pytest.mark.parametrize("linked", ["caption", "image"])
def test_load_folder_refuses_a_symlink_out_of_its_root(tmp_path: Path, linked: str) -> None:
    """One rule for every loader (issue #19): a symlinked file may not lead out of the root."""
    root, outside = tmp_path / "anchors", tmp_path / "secret"
    root.mkdir()
    outside.mkdir()
    Image.new("RGB", (4, 4)).save(root / "cat.png")
    (root / "cat.txt").write_text("A cat.\n")
    Image.new("RGB", (4, 4)).save(outside / "x.png")
    (outside / "x.txt").write_text("root:x:0:0:root:/root:/bin/bash\n")
    if linked == "caption":
        Image.new("RGB", (4, 4)).save(root / "dog.png")
        os.symlink(outside / "x.txt", root / "dog.txt")
    else:
        os.symlink(outside / "x.png", root / "dog.png")
        (root / "dog.txt").write_text("A dog.\n")
    with pytest.raises(InvalidInputError, match=rf"the {linked}.*dog.*outside the root"):
        load_folder(root)
    # A symlink that stays inside the root is fine.
    (root / f"dog.{'txt' if linked == 'caption' else 'png'}").unlink()
    os.symlink(
        root / f"cat.{'txt' if linked == 'caption' else 'png'}",
        root / ("dog.txt" if linked == "caption" else "dog.png"),
    )
    if linked == "caption":
        assert [p.caption for p in load_folder(root)] == ["A cat.", "A cat."]
    else:
        assert [p.caption for p in load_folder(root)] == ["A cat.", "A dog."]
