"""Run the tumour slices through the codec once: bitstreams, latents and (optionally) decodes.

Every classifier path starts from the same bitstreams, so they are produced once here and kept
in memory (latents as float16: 64 x 32 x 32 per slice). The work is per image and independent,
so it shows a progress bar and can be limited to the first N images of each part for tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fedcodec.shared.analysis.dataset import LabelledImage, load_image
from fedcodec.shared.analysis.image_input import InputPolicy
from fedcodec.shared.analysis.latents import LatentExtractor

SOURCE_BITS = 8
"""The tumour JPEGs are 8-bit; the codec is told so (it was trained on 12/16-bit MRI)."""


@dataclass
class CodedImages:
    """One split part after coding: labels, bitstreams, latents and optionally pixels/decodes."""

    names: list[str]
    labels: np.ndarray
    streams: list[bytes]
    latents: np.ndarray
    pixels: np.ndarray | None = None
    decoded: np.ndarray | None = None

    @property
    def bits_per_pixel(self) -> float:
        if not self.streams:
            return 0.0
        side = self.pixels.shape[-1] if self.pixels is not None else 512
        return 8.0 * sum(len(s) for s in self.streams) / (len(self.streams) * side * side)


def code_images(
    root: Path,
    images: Sequence[LabelledImage],
    extractor: LatentExtractor,
    *,
    keep_pixels: bool = False,
    decode: bool = False,
    description: str = "coding",
    progress: bool = True,
    policy: InputPolicy | None = None,
) -> CodedImages:
    """Encode every image with the codec and read its latents back from the bitstream."""
    streams: list[bytes] = []
    latents: list[np.ndarray] = []
    pixels: list[np.ndarray] = []
    decoded: list[np.ndarray] = []
    for image in tqdm(images, desc=description, disable=not progress, leave=False):
        original = load_image(root, image, policy)
        stream = extractor.encode(original, SOURCE_BITS)
        streams.append(stream)
        latents.append(extractor.latents(stream).astype(np.float16))
        if keep_pixels:
            pixels.append(original)
        if decode:
            decoded.append(np.asarray(extractor.decode(stream)).astype(np.uint8))
    return CodedImages(
        names=[i.name for i in images],
        labels=np.array([i.label for i in images], dtype=np.int64),
        streams=streams,
        latents=np.stack(latents) if latents else np.zeros((0, 1, 1, 1), np.float16),
        pixels=np.stack(pixels) if keep_pixels and pixels else None,
        decoded=np.stack(decoded) if decode and decoded else None,
    )
