"""Training the hybrid mode's residual coder: the ``neural`` networks with the base as reference.

The ``neural`` codec's one-reference networks were made for the previous slice; here the
reference is the JPEG 2000 base layer of the same slice, which is far closer, so the networks are
refitted on (slice, base) pairs through the ``neural`` package's own public training functions:
each training slice becomes a two-slice "volume" ``[base, slice]``, so ``collect_samples`` sees
the base exactly where the codec will (reference offset 1). Only the training pairs are ours; the
features, networks, quantisation and tables are ``neural``'s, which keeps the two codecs one
machine. The base layer's PSNR target is drawn per slice from ``base_levels_db`` so the networks
learn how far to trust every base quality the encoder may choose.
"""

from __future__ import annotations

from collections.abc import Sequence

import imagecodecs
import numpy as np

from fedcodec.shared.learned_lossy.hybrid import encode_base
from fedcodec.shared.neural.train import Samples, collect_samples


def base_pairs(slices: Sequence[tuple[np.ndarray, int]], base_levels_db: Sequence[float],
               seed: int = 0) -> list[tuple[np.ndarray, int]]:
    """``(stack([base, slice]), bits)`` per slice, with a random base quality each."""
    rng = np.random.default_rng(seed)
    out = []
    for image, bits in slices:
        level_db = float(base_levels_db[rng.integers(len(base_levels_db))])
        base = imagecodecs.jpeg2k_decode(encode_base(image, bits, level_db), numthreads=1)
        out.append((np.stack([base.astype(image.dtype), image]), bits))
    return out


def collect_hybrid_samples(slices: Sequence[tuple[np.ndarray, int]],
                           base_levels_db: Sequence[float], pixels_per_group: int = 1024,
                           seed: int = 0) -> dict[str, Samples]:
    """Samples for the ``neural`` networks with the base layer as the one reference."""
    return collect_samples(base_pairs(slices, base_levels_db, seed), pixels_per_group,
                           max_slices=2, seed=seed, progress=False)
