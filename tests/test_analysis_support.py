"""Shared set-up for the analysis tests (no tests here): small heads with seeded weights.

The heads are real :class:`Head` objects (the service evaluates exactly these), sized down to
24 features so CKKS work stays in the tens of milliseconds.
"""

from __future__ import annotations

import numpy as np

from fedcodec.shared.analysis.heads import LINEAR, POLY_MLP, Head

FEATURES = 24
CLASSES = ("pituitary", "meningioma", "glioma")


def seeded_head(kind: str, seed: int = 0, features: int = FEATURES) -> Head:
    rng = np.random.default_rng(seed)
    mean, std = rng.normal(size=features), rng.uniform(0.5, 2.0, size=features)
    if kind == LINEAR:
        weights = {"W": rng.normal(size=(features, 3)) * 0.3, "b": rng.normal(size=3)}
    else:
        weights = {
            "W1": rng.normal(size=(features, 6)) * 0.1, "b1": rng.normal(size=6) * 0.1,
            "W2": rng.normal(size=(6, 3)), "b2": rng.normal(size=3),
        }
    return Head(kind, weights, CLASSES, "channel-mean+absmean", "neural-lossy", "test",
                feature_mean=mean, feature_std=std)


def study_features(head: Head, studies: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return head.feature_mean + head.feature_std * rng.standard_normal((studies, head.feature_count))


HEAD_KINDS = (LINEAR, POLY_MLP)
