"""``study_features`` reads each series with its own codec (mixed-codec containers).

A profile can code the series of one study differently (header-level codec + per-series
codings), so the site must take the codec of *each* series from the container, and a series
that is not coded with the head's latent codec is a one-line error naming that series.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pydicom
import pytest

from fedcodec.client.analysis import site
from fedcodec.shared.container import (
    CodecInfo,
    CodedSeries,
    CodedStudy,
    SeriesInfo,
    write_container,
)
from fedcodec.shared.container.header import SeriesCoding
from fedcodec.shared.errors import FedcodecError


def _series(description: str, streams: list[bytes], coding: SeriesCoding | None) -> CodedSeries:
    n = len(streams)
    datasets = []
    for i in range(n):
        ds = pydicom.Dataset()
        ds.InstanceNumber = i + 1
        datasets.append(ds)
    info = SeriesInfo(
        series_uid=f"1.2.{description}", study_uid="1.2", patient_id="anon",
        description=description, modality="MR", shape=(n, 8, 8), dtype="uint8", bits_stored=8,
        signed=False, offset=0, rescale_slope=1.0, rescale_intercept=0.0,
        slice_ids=[str(i) for i in range(n)], slice_sources=[(i, 0) for i in range(n)],
        bits_allocated=8,
    )
    return CodedSeries(info, datasets, streams, coding=coding)


class _FakeExtractor:
    """Latents derived from the stream bytes; records which spec it was built for."""

    built: ClassVar[list[str]] = []

    def __init__(self, spec: str) -> None:
        self.spec = spec
        _FakeExtractor.built.append(spec)

    def latents(self, stream: bytes) -> np.ndarray:
        return np.full((4, 2, 2), float(len(stream)), dtype=np.float32)


@pytest.fixture
def fake_extractor(monkeypatch):
    _FakeExtractor.built = []
    monkeypatch.setattr(site, "latent_extractor", _FakeExtractor)
    return _FakeExtractor


def _write(path: Path, header_spec: str, series: list[CodedSeries]) -> Path:
    write_container(path, CodedStudy(CodecInfo(header_spec), "lossy", 0, None, series))
    return path


def test_each_series_is_read_with_its_own_codec(tmp_path, fake_extractor) -> None:
    lossy_q2 = SeriesCoding(CodecInfo("neural-lossy:quality=2"), "lossy", 0, 2)
    study = _write(tmp_path / "mixed.fcz", "neural-lossy", [
        _series("default", [b"abc", b"abcd"], None),
        _series("quality 2", [b"abcdef"], lossy_q2),
    ])
    rows = site.study_features(study, "neural-lossy")
    assert [r[0] for r in rows] == [0, 1]
    assert fake_extractor.built == ["neural-lossy", "neural-lossy:quality=2"]
    np.testing.assert_array_equal(rows[0][2][:, 0], [3.0, 4.0])  # mean of stream-length latents
    np.testing.assert_array_equal(rows[1][2][:, 0], [6.0])


def test_a_series_with_another_codec_is_a_one_line_error(tmp_path, fake_extractor) -> None:
    other = SeriesCoding(CodecInfo("zstd"), "lossless", 0, None)
    study = _write(tmp_path / "mixed.fcz", "neural-lossy", [
        _series("latents", [b"abc"], None),
        _series("archive", [b"raw"], other),
    ])
    with pytest.raises(FedcodecError) as caught:
        site.study_features(study, "neural-lossy")
    message = str(caught.value)
    assert "series 1 (archive)" in message and "coded with 'zstd'" in message
    assert "\n" not in message
    assert fake_extractor.built == []  # refused before any latent was decoded


def test_header_codec_alone_does_not_decide(tmp_path, fake_extractor) -> None:
    """Header says zstd, but the only series carries its own neural-lossy coding: accepted."""
    lossy = SeriesCoding(CodecInfo("neural-lossy"), "lossy", 0, 4)
    study = _write(tmp_path / "override.fcz", "zstd", [_series("latents", [b"ab"], lossy)])
    (row,) = site.study_features(study, "neural-lossy")
    assert row[1] == "latents" and fake_extractor.built == ["neural-lossy"]
