"""The ready-made anchor pools (``asif_qdrant.pools``) and ``anchors add --pool``."""

from __future__ import annotations

import click
import pytest

from asif_qdrant import InvalidInputError, pools
from asif_qdrant.cli.anchors import load_pairs
from asif_qdrant.loaders import load_tuxpaint_stamps
from tests.helpers import TUXPAINT_STAMPS, require_stamps


def test_pool_names_are_validated() -> None:
    assert pools.parse_pools(" emoji,tuxpaint ,emoji") == ["emoji", "tuxpaint"]
    assert pools.parse_pools(["openclipart"]) == ["openclipart"]
    for bad in ("tuxpaint,clipart", "", " , "):
        with pytest.raises(InvalidInputError, match="the pools are emoji, openclipart, tuxpaint"):
            pools.parse_pools(bad)
    with pytest.raises(click.UsageError, match="--pool: Unknown anchor pool"):
        load_pairs(None, None, None, False, "nope")
    with pytest.raises(click.UsageError, match=r"exactly one of .*--pool"):
        load_pairs(None, None, None, True, "tuxpaint")


def test_even_subset_spreads_over_the_whole_range() -> None:
    assert pools.even_subset(10, 4) == [0, 2, 5, 7]
    assert pools.even_subset(3, None) == [0, 1, 2] == pools.even_subset(3, 5)


def test_tuxpaint_pool_keeps_one_stamp_per_caption() -> None:
    require_stamps([TUXPAINT_STAMPS / "animals" / "marsupials" / "koala.png"])
    every = load_tuxpaint_stamps()
    pool = load_pairs(None, None, None, False, "tuxpaint")
    captions = [p.caption for p in pool]
    assert len(set(captions)) == len(captions) == len({p.caption for p in every})
    assert all(p.metadata["pool"] == "tuxpaint" for p in pool)
    first = {}
    for p in every:
        first.setdefault(p.caption, p.image)
    assert [p.image for p in pool] == list(first.values())


def test_missing_pools_say_how_to_install(tmp_path) -> None:
    with pytest.raises(InvalidInputError, match="apt-get install openclipart-svg"):
        pools.load_openclipart(tmp_path)
    with pytest.raises(InvalidInputError, match="npm pack emoji-datasource-google"):
        pools.load_emoji(tmp_path)
