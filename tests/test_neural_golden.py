"""Streams written by an earlier build decode to exactly the same pixels (bit-exact hot path).

``tests/fixtures/neural/golden.npz`` holds real MR slices (GE fMRI 64x64 with a 10-slice
period, GE 3-D T1 crops 96x96) and the neural streams an earlier build wrote for them:
lossless with inter-slice references (one and two), near-lossless tau=2, and the bin-centroid
variant. Any speed work on the coder must keep decoding them to the stored pixels, and the
encoder must still write the very same bytes as the newest fixture. When the stream format
changes on purpose, add a fixture (older ones stay: their streams must keep decoding); when the
model itself changes the streams name another model id and the first test says so::

    python tests/test_neural_golden.py --write   # writes ENCODER_FIXTURE

``golden.npz``: written before extended slices (0xA8: value range, mean corrections,
2026-12-07); ``golden-bounded.npz``: the same slices from the build that added them (their
crops are too small for mean corrections; ``test_neural_determinism`` covers those). Both were
written with ``neural_v1``, the default model until ``neural_v2``: the codec, whose default is
now v3, decodes them by finding the shipped model their streams name. ``golden-v2.npz``: the
same slices written with ``neural_v2``; ``golden-v3.npz``: written with ``neural_v3`` (v2's
networks with near-lossless tables per bound), the encoder fixture.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from fedcodec.shared.codecs.base import get_codec
from fedcodec.shared.neural.stream_format import unpack
from fedcodec.shared.neural.weights import DEFAULT_WEIGHTS, SHIPPED, NeuralWeights, shipped_path

FIXTURES = tuple(Path(__file__).parent / "fixtures" / "neural" / name
                 for name in ("golden.npz", "golden-bounded.npz", "golden-v2.npz",
                              "golden-v3.npz"))
ENCODER_FIXTURE = FIXTURES[-1]
CASES = {
    "fmri": "neural:fallback=0",
    "t1": "neural:fallback=0",
    "t1_tau2": "neural:mode=near-lossless,tau=2,fallback=0",
    "t1_centroid": "neural:mode=near-lossless,tau=2,fallback=0,centroid=1",
}


def _load(fixture: Path = ENCODER_FIXTURE) -> dict[str, tuple[np.ndarray, int, list[bytes]]]:
    with np.load(fixture) as z:
        out = {}
        for name in CASES:
            blob, lengths = z[f"{name}.streams"].tobytes(), z[f"{name}.lengths"]
            ends = np.cumsum(lengths)
            streams = [blob[e - n : e] for e, n in zip(ends, lengths, strict=True)]
            out[name] = (z[f"{name}.pixels"], int(z[f"{name}.bits"]), streams)
        return out


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_golden_streams_name_a_shipped_model(fixture: Path) -> None:
    ids = [NeuralWeights.load(shipped_path(name)).model_id for name in SHIPPED]
    for name, (_, _, streams) in _load(fixture).items():
        header, _ = unpack(streams[0])
        assert any(i.startswith(header.model_id) for i in ids), f"{name}: no shipped model"


def test_encoder_fixture_names_the_default_model() -> None:
    model_id = NeuralWeights.load(DEFAULT_WEIGHTS).model_id
    for name, (_, _, streams) in _load().items():
        assert model_id.startswith(unpack(streams[0])[0].model_id), (
            f"{name}: the default model changed; ship the new one under a new name and "
            "regenerate with `python tests/test_neural_golden.py --write`")


def test_older_default_streams_decode_by_their_model_id() -> None:
    """A v1 stream through the v2 default codec and through one pinned to v1: same pixels; an
    unknown model id is a one-line error naming it."""
    from fedcodec.shared.errors import CorruptDataError

    pixels, _, streams = _load(FIXTURES[1])["t1"]
    assert np.array_equal(get_codec("neural:weights=neural_v1").decode_volume(streams), pixels)
    assert np.array_equal(get_codec("neural").decode_volume(streams), pixels)
    forged = bytearray(streams[0])
    at = forged.index(unpack(streams[0])[0].model_id)
    forged[at : at + 2] = b"\xde\xad"
    with pytest.raises(CorruptDataError, match="which this build does not have") as info:
        get_codec("neural").decode(bytes(forged))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_golden_streams_decode_to_the_same_pixels(fixture: Path) -> None:
    for name, (pixels, _, streams) in _load(fixture).items():
        decoded = get_codec(CASES[name]).decode_volume(streams)
        assert decoded.dtype == pixels.dtype and np.array_equal(decoded, pixels), name


def test_encoder_writes_the_same_bytes() -> None:
    originals = _load_originals()
    for name, (pixels, bits, streams) in _load().items():
        original = originals.get(name, pixels)  # lossless cases: the pixels themselves
        assert get_codec(CASES[name]).encode_volume(original, bits) == streams, name


def _load_originals() -> dict[str, np.ndarray]:
    with np.load(ENCODER_FIXTURE) as z:
        return {name: z[f"{name}.original"] for name in CASES if f"{name}.original" in z}


def _write() -> None:  # pragma: no cover - run by hand when the model changes
    sys.path.insert(0, str(Path(__file__).parent))
    from test_neural_codec import ge_fmri, ge_t1_slice  # noqa: F401 (shared-data readers)

    import pydicom

    from fedcodec.shared.pixels import to_unsigned
    from conftest import require_shared_data

    fmri, fmri_bits = ge_fmri()
    folder = require_shared_data("dicom", "ge", "In", "05_3D_Ax_T1_MP_RAGE_R22")
    files = sorted(folder.iterdir())[60:64]
    t1 = []
    for path in files:
        ds = pydicom.dcmread(path)
        t1.append(to_unsigned(ds.pixel_array, int(ds.BitsStored), bool(ds.PixelRepresentation))[0])
    t1_bits = int(ds.BitsStored)
    t1 = np.ascontiguousarray(np.stack(t1)[:, 80:176, 80:176])
    volumes = {"fmri": (fmri[:20], fmri_bits), "t1": (t1, t1_bits),
               "t1_tau2": (t1[:3], t1_bits), "t1_centroid": (t1[3:], t1_bits)}
    arrays = {}
    for name, spec in CASES.items():
        volume, bits = volumes[name]
        codec = get_codec(spec)
        streams = codec.encode_volume(volume, bits)
        decoded = codec.decode_volume(streams)
        arrays[f"{name}.pixels"] = decoded
        if not np.array_equal(decoded, volume):
            arrays[f"{name}.original"] = volume
        arrays[f"{name}.bits"] = np.array(bits)
        arrays[f"{name}.streams"] = np.frombuffer(b"".join(streams), dtype=np.uint8)
        arrays[f"{name}.lengths"] = np.array([len(s) for s in streams], dtype=np.int64)
    ENCODER_FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(ENCODER_FIXTURE, **arrays)
    print(f"wrote {ENCODER_FIXTURE} ({ENCODER_FIXTURE.stat().st_size} bytes)")


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] == ["--write"]:
        _write()


def test_default_model_can_be_pinned_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``FEDCODEC_NEURAL_WEIGHTS`` names the model ``neural`` codes with when the spec names
    none (a site pinning the model it validated); a bad value is a one-line error."""
    from fedcodec.shared.errors import FedcodecError

    image = np.random.default_rng(1).integers(0, 4096, (24, 20)).astype(np.uint16)
    v1 = NeuralWeights.load(shipped_path("neural_v1")).model_id
    monkeypatch.setenv("FEDCODEC_NEURAL_WEIGHTS", "neural_v1")
    stream = get_codec("neural:fallback=0").encode(image, 12)
    assert v1.startswith(unpack(stream)[0].model_id)
    monkeypatch.delenv("FEDCODEC_NEURAL_WEIGHTS")
    assert np.array_equal(get_codec("neural").decode(stream), image)  # found by its id
    assert DEFAULT_WEIGHTS == shipped_path(SHIPPED[0])
    monkeypatch.setenv("FEDCODEC_NEURAL_WEIGHTS", "neural_v9")
    with pytest.raises(FedcodecError, match="neither a shipped model") as info:
        get_codec("neural")
    assert "\n" not in str(info.value)


def test_shipped_models_are_named_by_their_id() -> None:
    from fedcodec.shared.neural.weights import shipped_name

    for name in SHIPPED:
        model_id = NeuralWeights.load(shipped_path(name)).model_id
        assert shipped_name(model_id[:2]) == name == shipped_name(model_id)
    assert shipped_name(b"\xde\xad") is None and shipped_name(b"") is None
    # a stream names its model by the first MODEL_ID_BYTES only: shipped models must differ there
    from fedcodec.shared.neural.stream_format import MODEL_ID_BYTES

    prefixes = {NeuralWeights.load(shipped_path(n)).model_id[:MODEL_ID_BYTES] for n in SHIPPED}
    assert len(prefixes) == len(SHIPPED)
