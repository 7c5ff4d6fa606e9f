"""Settings of an evaluation run: encoders, k, p, pools, sizes, sweeps.

:meth:`EvalConfig.smoke` is the seconds-long smoke version (60 Tux Paint stamps, 100
Fashion-MNIST images, the Tux Paint pool only, tiny sweeps).

Example:
    >>> from asif_qdrant_evaluation.config import EvalConfig
    >>> EvalConfig().k, EvalConfig.smoke().tuxpaint_limit
    (800, 60)
    >>> EvalConfig(k=0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    asif_qdrant.errors.InvalidParameterError: The 'k' parameter of EvalConfig must be an int ...
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from asif_qdrant.errors import InvalidParameterError, check_int, check_real
from asif_qdrant.relative import Spread, check_power
from asif_qdrant.retriever.fingerprint import DEFAULT_CLASSIFY_SPREAD

__all__ = ["EvalConfig"]


#: Settings that are ``None`` or an int >= 1.
_OPTIONAL_COUNTS = (
    "csa_dim",
    "tuxpaint_limit",
    "openclipart_limit",
    "emoji_limit",
    "fashion_per_class",
)


@dataclass(frozen=True)
class EvalConfig:
    """What an evaluation run measures and on how much data.

    Attributes:
        image_encoder: Short name of the image encoder (``lite0``, ``lite2``).
        text_encoder: Short name of the text encoder (``minilm``, ``mpnet``).
        k: Anchors kept per relative vector.
        p: Exponent of the relative weights.
        classify_spread: Zero-shot classification's spread rule (the library's default,
            ``ASIF(classify_spread=...)``), or None: classification with ``p``, the paper's.
        pools: Anchor pools to mix (``tuxpaint``, ``openclipart``, ``emoji``); missing ones
            are left out and the report says which were used.
        tuxpaint_limit: Use only this many Tux Paint stamps (spread evenly); ``None``: all.
        openclipart_limit: At most this many openclipart images (spread evenly over folders).
        emoji_limit: At most this many emoji.
        folds: Folds of the Tux Paint stamps (anchors never contain the test fold).
        fashion_per_class: Fashion-MNIST test images per class (drawn with ``seed``).
        adjust_pairs: Training images added per trial in the "adjust" task.
        adjust_trials: Trials of the "adjust" task.
        adjust_time_encoding: Also time encoding the added images from scratch (the smoke
            version skips it: it is the slowest part and measures the encoder, not ASIF).
        methods: Methods compared (names in ``METHODS``); ``asif`` is the library path.
            Library methods the installed library does not offer (``csa``, ``hybrid``
            before ASIF takes ``method=``) are left out of the run, and the report says so.
        csa_dim: Canonical directions kept by CSA; ``None``: ``min(d_img, d_txt, n // 2)``.
        csa_ridge: CSA's relative ridge (a fraction of each side's mean variance).
        rrf_k: The constant of reciprocal rank fusion in the hybrid methods (Qdrant's and the
            library's: 2, ranks counted from 0).
        csa_dims: The ``csa_dim`` values of the CSA sweep (task "csa").
        csa_ridges: The ``csa_ridge`` values of the CSA sweep.
        scaling_sizes: Anchor counts of the "scaling" task (the whole pool is added).
        scaling_repeats: Random subsets per anchor count.
        kp_ks: Values of k in the "kp" heatmap.
        kp_ps: Values of p in the "kp" heatmap.
        encoders_image: Image encoders compared by the "encoders" task.
        encoders_text: Text encoders compared by the "encoders" task.
        seed: Seed of every random draw.
        quick: Marks the smoke version (``--quick``; reported).
        scaling_plot: File name of the scaling plot.
        kp_plot: File name of the k/p heatmap.
    """

    image_encoder: str = "lite0"
    text_encoder: str = "minilm"
    k: int = 800
    p: float = 8.0
    classify_spread: float | None = DEFAULT_CLASSIFY_SPREAD
    pools: tuple[str, ...] = ("tuxpaint", "openclipart", "emoji")
    tuxpaint_limit: int | None = None
    openclipart_limit: int | None = 1500
    emoji_limit: int | None = None
    folds: int = 5
    fashion_per_class: int | None = 200
    adjust_pairs: int = 100
    adjust_trials: int = 5
    adjust_time_encoding: bool = True
    methods: tuple[str, ...] = (
        "asif",
        "asif-pruned",
        "asif-two-stage",
        "numpy",
        "numpy-noclamp",
        "dense",
        "csa",
        "csa-numpy",
        "hybrid",
        "hybrid-numpy",
    )
    csa_dim: int | None = None
    csa_ridge: float = 0.1
    rrf_k: int = 2
    csa_dims: tuple[int, ...] = (10, 25, 50, 100, 150, 200, 300, 384)
    csa_ridges: tuple[float, ...] = (1e-3, 1e-2, 0.1, 1.0, 10.0)
    scaling_sizes: tuple[int, ...] = (100, 250, 500, 1000, 2000)
    scaling_repeats: int = 3
    kp_ks: tuple[int, ...] = (5, 10, 25, 50, 100, 200, 400, 800)
    kp_ps: tuple[float, ...] = (1, 2, 4, 6, 8, 10, 12)
    encoders_image: tuple[str, ...] = ("lite0", "lite2")
    encoders_text: tuple[str, ...] = ("minilm", "mpnet")
    seed: int = 0
    quick: bool = False
    scaling_plot: str = "eval_scaling.png"
    kp_plot: str = "eval_kp_heatmap.png"

    def __post_init__(self) -> None:
        check_int("k", "EvalConfig", self.k, minimum=1)
        check_real("p", "EvalConfig", self.p, greater_than=0)
        if self.classify_spread is not None:
            check_power("classify_spread", "EvalConfig", Spread(self.classify_spread))
        check_int("folds", "EvalConfig", self.folds, minimum=2)
        for name in ("adjust_pairs", "adjust_trials", "scaling_repeats", "rrf_k"):
            check_int(name, "EvalConfig", getattr(self, name), minimum=1)
        check_real("csa_ridge", "EvalConfig", self.csa_ridge, greater_than=0)
        for name in _OPTIONAL_COUNTS:
            value = getattr(self, name)
            if value is not None:
                check_int(name, "EvalConfig", value, minimum=1)
        from asif_qdrant_evaluation.encoders import ENCODERS

        for name, modality in (("image_encoder", "image"), ("text_encoder", "text")):
            value = getattr(self, name)
            if value not in ENCODERS or ENCODERS[value].modality != modality:
                allowed = [s for s, e in ENCODERS.items() if e.modality == modality]
                raise InvalidParameterError(
                    f"The '{name}' parameter of EvalConfig must be one of {allowed}. "
                    f"Got {value!r} instead."
                )
        from asif_qdrant_evaluation.methods import METHODS

        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise InvalidParameterError(
                "The 'methods' parameter of EvalConfig must name methods among "
                f"{', '.join(METHODS)}. Got {self.methods!r} instead."
            )
        if self.k not in self.kp_ks or self.p not in self.kp_ps:
            object.__setattr__(self, "kp_ks", tuple(sorted({*self.kp_ks, self.k})))
            object.__setattr__(self, "kp_ps", tuple(sorted({*self.kp_ps, self.p})))

    @classmethod
    def smoke(cls, **overrides: Any) -> EvalConfig:
        """The smoke version: small data, Tux Paint pool only, tiny sweeps.

        Example:
            >>> EvalConfig.smoke(k=50).k
            50
        """
        settings: dict[str, Any] = {
            "pools": ("tuxpaint",),
            "tuxpaint_limit": 60,
            "folds": 3,
            "fashion_per_class": 10,
            "adjust_pairs": 20,
            "adjust_trials": 2,
            "adjust_time_encoding": False,
            "scaling_sizes": (10, 20),
            "scaling_repeats": 2,
            "kp_ks": (5, 50, 800),
            "kp_ps": (1, 8),
            "csa_dims": (5, 10, 20),
            "csa_ridges": (1e-3, 1.0),
            "quick": True,
        }
        settings.update(overrides)
        return cls(**settings)

    def replace(self, **changes: Any) -> EvalConfig:
        """A copy with some settings changed."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python form."""
        return asdict(self)
