"""``neural:mode=progressive`` refinement layers coded inside the coarse layer's window (0xA7),
and progressive containers written before them (every refinement an ordinary stream).

Data: pydicom-data's 10-frame 64x64 12-bit MR (installed with fedcodec, no shared data needed);
``fixtures/progressive-v1-16-4-0.fcz`` is that file compressed by ``fedcodec compress --mode
lossless --codec neural:mode=progressive,layers=16-4-0`` before the window refinement existed.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from fedcodec.client.cli import main
from fedcodec.shared.codecs import get_codec
from fedcodec.shared.container import read_container
from fedcodec.shared.errors import CorruptDataError
from fedcodec.shared.neural.bounded_lossy import stream_tau
from fedcodec.shared.neural.stream_format import WINDOW_MAGIC, unpack
from fedcodec.shared.sources import read_stacks

EMRI = Path(pydicom.__file__).parents[1] / "data_store" / "data" / "emri_small.dcm"
OLD_CONTAINER = Path(__file__).parent / "fixtures" / "progressive-v1-16-4-0.fcz"
OLD_LAYER_SHA256 = {1: "b069bd26616918d5", 2: "60c1309fadd9e6b9", 3: "9719c5d0f62ce971"}
"""sha256 prefixes of the fixture's layer decodes, taken with the code that wrote it."""


@pytest.fixture(scope="module")
def emri() -> tuple[np.ndarray, int]:
    (stack,), _ = read_stacks(EMRI)
    return np.ascontiguousarray(stack.codec_volume()[0]), stack.bits


def _check_layers(codec, streams, volume) -> None:  # type: ignore[no-untyped-def]
    n = volume.shape[0]
    for layer, bound in enumerate(codec.layers, start=1):
        part = streams[(layer - 1) * n: layer * n]
        assert {codec.guaranteed_error(s) for s in part} == {bound}
        decoded = codec.decode_layers(streams[: layer * n], layer, partial=True)
        assert np.abs(decoded.astype(np.int64) - volume).max() <= bound


@pytest.mark.parametrize("layers", ["13-4-1-0", "40-13-4", "16-5-0"])
def test_every_refinement_layer_holds_its_bound(emri, layers: str) -> None:
    """Nested lists (13-4-1-0, 40-13-4) and a non-nesting one (16-5-0: 33 levels are 3 bins of
    11) all hold every layer's bound; refinements are 0xA7 streams naming the coarse bound."""
    volume, bits = emri
    volume = volume[:2]
    codec = get_codec(f"neural:mode=progressive,layers={layers}")
    streams = codec.encode_volume(volume, bits)
    _check_layers(codec, streams, volume)
    n = volume.shape[0]
    refinements = [unpack(s)[0] for s in streams[n:] if s[0] in (WINDOW_MAGIC, 0xA9)]
    assert len(refinements) >= n  # copies (0xA2) only where a slice already holds the bound
    for header in refinements:
        assert header.window_bound > header.tau and header.ref_offsets[0] == n
    if codec.layers[-1] == 0:
        assert np.array_equal(codec.decode_volume(streams), volume)


def test_windowed_layers_cost_less_than_ordinary_refinement(emri) -> None:
    volume, bits = emri
    volume = volume[:3]
    size = {w: sum(map(len, get_codec(f"neural:mode=progressive,layers=13-4-0,window={w}")
                   .encode_volume(volume, bits))) for w in (0, 1)}
    single = sum(map(len, get_codec("neural:tau=0").encode_volume(volume, bits)))
    assert size[1] < 0.9 * size[0] and size[1] <= 1.08 * single


def test_old_progressive_container_decodes_every_layer(emri, tmp_path: Path) -> None:
    volume, _ = emri
    container = read_container(OLD_CONTAINER)
    codec = get_codec(container.header.codec.spec)
    streams = container.pixel_streams(0)
    assert {s[0] for s in streams} <= {0xA1, 0xA2, 0xA4} and len(streams) == 30
    for layer, bound in enumerate((16, 4, 0), start=1):
        decoded = codec.decode_layers(streams, layer)
        assert hashlib.sha256(decoded.tobytes()).hexdigest()[:16] == OLD_LAYER_SHA256[layer]
        assert np.abs(decoded.astype(np.int64) - volume).max() <= bound
        assert {stream_tau(s) for s in streams[(layer - 1) * 10: layer * 10]} == {bound}
    assert main(["decompress", str(OLD_CONTAINER), "-o", str(tmp_path / "preview"),
                 "--layer", "2", "--quiet"]) == 0
    preview = pydicom.dcmread(next((tmp_path / "preview").rglob("*.dcm")))
    assert "every pixel within 4 " in preview.DerivationDescription
    # the preview's ratio counts the layers it was decoded from, not the whole container
    read = sum(map(len, streams[:20]))
    expected = volume.size * 2 / read
    assert float(preview.LossyImageCompressionRatio) == pytest.approx(expected, rel=1e-3)
    assert float(preview.LossyImageCompressionRatio) > volume.size * 2 / sum(map(len, streams))


@pytest.mark.parametrize("layers, text", [
    ("4-16", "layers must be"), ("16", "layers must be"), ("a-b", "layers must be"),
    ("16-4-0,window=2", "window must be 0 or 1"), ("9-8-7-6-5-4-3-2-1", "layers must be"),
])
def test_bad_layer_lists_are_one_line_errors(tmp_path: Path, capsys, layers: str,
                                             text: str) -> None:
    study = tmp_path / "study"
    study.mkdir()
    shutil.copy(EMRI, study / "emri_small.dcm")
    out = tmp_path / "x.fcz"
    code = main(["compress", str(study), "-o", str(out), "--quiet", "--codec",
                 f"neural:mode=progressive,layers={layers}"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert text in err and not out.exists()


def test_damaged_refinement_streams_are_refused(emri) -> None:
    volume, bits = emri
    volume = volume[:2]
    codec = get_codec("neural:mode=progressive,layers=13-0")
    streams = codec.encode_volume(volume, bits)
    target = next(i for i, s in enumerate(streams) if s[0] == WINDOW_MAGIC)
    header = unpack(streams[target])[0]
    flipped = bytearray(streams[target])
    flipped[-3] ^= 0x40
    for bad in (bytes(flipped), streams[target][:-4]):
        damaged = list(streams)
        damaged[target] = bad
        with pytest.raises(CorruptDataError):
            codec.decode_volume(damaged)
    assert header.window_bound == 13 and header.tau == 0


@pytest.mark.parametrize("centred", [False, True])
def test_both_cell_layouts_hold_the_bound_and_decode(emri, centred: bool) -> None:
    """The encoder picks the layout per slice; each one alone holds tau and decodes bit-exactly."""
    from fedcodec.shared.neural.slice_coder import SliceParams, decode_slice, encode_slice

    volume, bits = emri
    codec = get_codec("neural:tau=13")
    weights, models = codec._weights()
    coarse = codec._encode_one(np.ascontiguousarray(volume[0]), bits, [], (), 13)[1]
    params = SliceParams(bits, 4, centred_cells=centred)
    words, recon = encode_slice(volume[0], params, [coarse], weights, models, window_bound=13)
    assert np.abs(recon.astype(np.int64) - volume[0]).max() <= 4
    decoded = decode_slice(words, volume[0].shape, params, [coarse], weights, models,
                           window_bound=13)
    assert np.array_equal(decoded, recon)
