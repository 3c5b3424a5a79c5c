"""Count tables by name, so the coordinator and every site code held-out series the same way.

``shipped``: the fitted tables of the default shipped model (``neural_v3.npz``, in every
installation); a shipped model's name (``neural_v1``): that model's tables; ``logistic``: the
parametric tables (what a model trained without pixel histograms would have).
Federated training publishes its networks with one of them (run config ``codec-counts``), and the
sites' held-out bpp for the promotion gate uses the same one.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.neural.tables import logistic_counts
from fedcodec.shared.neural.weights import DEFAULT_WEIGHTS, SHIPPED, NeuralWeights, shipped_path

COUNT_TABLES = ("shipped", *SHIPPED, "logistic")


@lru_cache(maxsize=4)
def named_counts(name: str) -> np.ndarray:
    if name == "shipped":
        return NeuralWeights.load(DEFAULT_WEIGHTS).counts
    shipped = shipped_path(name)
    if shipped is not None:
        return NeuralWeights.load(shipped).counts
    if name == "logistic":
        return logistic_counts()
    raise FedcodecError(f"codec-counts must be one of {', '.join(COUNT_TABLES)}, not {name!r}")
