"""``fedcodec analyze remote``: classify the slices of ``.fcz`` studies on the analysis service.

Per study: read the container, entropy-decode every slice's latents (no pixels are ever made),
pool each slice to a feature vector, then encrypt all slices of all studies in as few CKKS
batches as the service allows. The decrypted, verified scores give a label per slice and, by the
mean score over its slices, per series.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fedcodec.client.analysis.remote import AnalysisClient, EncryptedClassifier, RemoteStats
from fedcodec.shared.analysis.latents import LatentExtractor, latent_extractor
from fedcodec.shared.analysis.pooling import pool_latents
from fedcodec.shared.codecs.base import parse_codec_spec
from fedcodec.shared.container import read_container
from fedcodec.shared.errors import FedcodecError


@dataclass
class SeriesResult:
    study: str
    series: int
    description: str
    slice_labels: list[str]
    label: str
    """Majority vote of ``slice_labels`` (:data:`SERIES_RULE`)."""
    mean_scores: list[float]


@dataclass
class RemoteResult:
    head: str
    model_hash: str
    series: list[SeriesResult] = field(default_factory=list)
    stats: RemoteStats = field(default_factory=RemoteStats)


def study_features(path: Path, card_codec: str, extractor: LatentExtractor | None = None):
    """Pooled latent features of every slice of every series in one ``.fcz``.

    Each series is read with its *own* codec (``header.coding_of(index)``): a profile may code
    series differently, so a study-level spec is not enough. Every series must be coded with the
    head's latent codec; the first one that is not is a one-line error, raised before any latent
    is decoded. ``extractor`` (tests) replaces the per-spec extractors.
    """
    container = read_container(path)
    wanted, _ = parse_codec_spec(card_codec)
    specs = []
    for index, entry in enumerate(container.series):
        spec = container.header.coding_of(index).codec.spec
        name, _ = parse_codec_spec(spec)
        if name != wanted:
            raise FedcodecError(
                f"{path}: series {index} ({entry.info.description or 'no description'}) is coded "
                f"with {spec!r}; the deployed head reads latents of {card_codec!r} (compress the "
                "study with that codec first)"
            )
        specs.append(spec)
    extractors: dict[str, LatentExtractor] = {}
    per_series = []
    for index, entry in enumerate(container.series):
        source = extractor
        if source is None:
            if specs[index] not in extractors:
                extractors[specs[index]] = latent_extractor(specs[index])
            source = extractors[specs[index]]
        latents = [source.latents(s) for s in container.pixel_streams(index)]
        per_series.append((index, entry.info.description, pool_latents(np.stack(latents))))
    return per_series


def analyze_remote(
    paths: list[Path],
    service: str,
    tls_dir: Path,
    *,
    head: str = "",
    pinned_model_hash: str = "",
    checks: int = 8,
    timeout: float = 600.0,
    keep_context: Path | None = None,
) -> RemoteResult:
    """Encrypted classification of every slice of ``paths`` on the service at ``service``."""
    for path in paths:  # fail before any key generation or network traffic
        read_container(path)
    with AnalysisClient(service, tls_dir, timeout=timeout) as client:
        session = EncryptedClassifier(
            client, head, pinned_model_hash=pinned_model_hash, checks=checks,
            keep_context=keep_context,
        )
        card = session.card
        rows = []
        for path in paths:
            for index, description, features in study_features(Path(path), card.latent_codec):
                if features.shape[1] != card.feature_count:
                    raise FedcodecError(
                        f"{path}: {features.shape[1]} features per slice, the head takes "
                        f"{card.feature_count} (another codec model?)"
                    )
                rows.append((str(path), index, description, features))
        if not rows:
            raise FedcodecError("no slices to analyse")
        scores = session.scores(np.concatenate([r[3] for r in rows]))
        result = RemoteResult(card.kind, card.model_hash, stats=session.stats)
        offset = 0
        for study, index, description, features in rows:
            mine = scores[offset : offset + len(features)]
            offset += len(features)
            mean = mine.mean(axis=0)
            votes = mine.argmax(axis=1)
            result.series.append(SeriesResult(
                study, index, description, [card.class_names[i] for i in votes],
                card.class_names[series_vote(votes, mean)], [float(v) for v in mean],
            ))
        return result


SERIES_RULE = "series label = the most common slice label (ties: higher mean score)"


def series_vote(votes: np.ndarray, mean_scores: np.ndarray) -> int:
    """The class most slices were given; a tie goes to the tied class with the higher mean
    score. (A mean score alone let 3 glioma slices outvote 19 pituitary ones.)"""
    counts = np.bincount(votes, minlength=len(mean_scores))
    tied = np.flatnonzero(counts == counts.max())
    return int(tied[np.argmax(mean_scores[tied])])
