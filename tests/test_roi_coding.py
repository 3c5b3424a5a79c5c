"""Region-of-interest coding: ROI exact / within tau on every pixel, lossy outside, one stream.

Covers the codec (``neural:mode=roi``: box, centred box, bound mask), the per-pixel closed loop
(bit-exact in another process with another thread count), corrupt streams, and ``fedcodec
compress --profile roi --roi-box/--roi-mask`` through decompress to lossy-marked DICOM.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from conftest import run_with_threads
from fedcodec.client.cli import main
from fedcodec.shared.codecs.base import CodecMode, get_codec
from fedcodec.shared.errors import CorruptDataError, FedcodecError
from fedcodec.shared.learned_lossy.roi_codec import RoiCodec, roi_masks
from fedcodec.shared.learned_lossy.roi_mask import from_array, parse_box

EMRI = Path(pydicom.__file__).parents[1] / "data_store" / "data" / "emri_small.dcm"


def _volume(slices: int = 3, rows: int = 72, cols: int = 64, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols]
    anatomy = 1500 + 800 * np.sin(x / 7.0) * np.cos(y / 11.0)
    vol = np.stack([anatomy + rng.normal(0, 25, anatomy.shape) for _ in range(slices)])
    return np.clip(np.rint(vol), 0, 4095).astype(np.uint16)


def _blob_mask(shape: tuple[int, int]) -> np.ndarray:
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (y - shape[0] * 0.45) ** 2 + (x - shape[1] * 0.55) ** 2 < (min(shape) * 0.3) ** 2


@pytest.mark.parametrize("tau", [0, 2])
def test_box_round_trip_bound_inside_lossy_outside(tau: int) -> None:
    volume = _volume()
    codec = get_codec(f"neural:mode=roi,tau={tau},box=10:20:40:50")
    assert isinstance(codec, RoiCodec) and codec.mode is CodecMode.LOSSY
    assert codec.roi_max_error == tau
    streams = codec.encode_volume(volume, 12)
    decoded = get_codec("neural:mode=roi").decode_volume(streams)  # no region needed to decode
    masks = roi_masks(streams)
    assert masks.sum() == 3 * 30 * 30 and masks[:, 20:50, 10:40].all()
    error = np.abs(decoded.astype(np.int64) - volume)
    assert error[masks].max() <= tau
    if tau == 0:
        np.testing.assert_array_equal(decoded[masks], volume[masks])
    assert error[~masks].max() > 2  # outside really is lossy (the base layer)
    lossless = sum(len(s) for s in get_codec("neural").encode_volume(volume, 12))
    assert sum(len(s) for s in streams) < lossless


def test_bound_mask_and_slice_range() -> None:
    volume = _volume(slices=4)
    mask = np.zeros(volume.shape, dtype=bool)
    mask[1] = _blob_mask(volume.shape[1:])
    mask[2, 5:9, 7:30] = True
    codec = get_codec("neural:mode=roi,tau=0").with_roi(from_array(mask.astype(np.uint8), "m.npy"))
    streams = codec.encode_volume(volume, 12)
    np.testing.assert_array_equal(roi_masks(streams), mask)  # bitmap, box and empty slices
    decoded = codec.decode_volume(streams)
    np.testing.assert_array_equal(decoded[mask], volume[mask])
    assert codec.describe()["roi"]["kind"] == "mask"
    assert len(streams[0]) < len(streams[1])  # an empty ROI costs only the base layer

    boxed = get_codec("neural:mode=roi,tau=0").with_roi(parse_box("0,0,64,72,1,2"))
    box_masks = roi_masks(boxed.encode_volume(volume, 12))
    assert box_masks[1].all() and not box_masks[[0, 2, 3]].any()


def test_outside_refined_coarsely_and_uint8_centre() -> None:
    volume = _volume(slices=1)[0]
    codec = get_codec("neural:mode=roi,tau=1,outside=4,centre=0.2")
    decoded = codec.decode(codec.encode(volume, 12))
    mask = roi_masks([codec.encode(volume, 12)])[0]
    error = np.abs(decoded.astype(np.int64) - volume)
    assert error[mask].max() <= 1 and error[~mask].max() <= 4
    small = (volume[:5, :7] >> 4).astype(np.uint8)  # too small for a base layer
    tiny = get_codec("neural:mode=roi,tau=0,box=1:1:3:3")
    out = tiny.decode(tiny.encode(small, 8))
    assert out.dtype == np.uint8 and np.array_equal(out[1:3, 1:3], small[1:3, 1:3])


def test_corrupt_and_truncated_streams_raise() -> None:
    volume = _volume(slices=1)[0]
    codec = get_codec("neural:mode=roi,tau=0,box=8:8:40:40")
    data = codec.encode(volume, 12)
    for bad in (data[:-1], data[:30], b"", data[:40] + bytes([data[40] ^ 1]) + data[41:],
                b"XXXX" + data[4:]):
        with pytest.raises(CorruptDataError):
            codec.decode(bad)


def test_bad_parameters_and_missing_region_are_clear_errors() -> None:
    for spec, message in (
        ("neural:mode=roi,tau=16", "tau must be 0..15"),
        ("neural:mode=roi,tau=2,outside=1", "outside must be base or a tau 2..15"),
        ("neural:mode=roi,box=1:2:3", "bad ROI box"),
        ("neural:mode=roi,box=1:1:5:5,centre=0.1", "box or centre, not both"),
        ("neural:mode=roi,base=5", "base must be a PSNR"),
    ):
        with pytest.raises(FedcodecError, match=message):
            get_codec(spec)
    with pytest.raises(FedcodecError, match="no region of interest"):
        get_codec("neural:mode=roi").encode(_volume(slices=1)[0], 12)
    region = from_array(np.ones((5, 9, 9)))
    with pytest.raises(FedcodecError, match=r"has shape \(5, 9, 9\), but the series is 3x72x64"):
        get_codec("neural:mode=roi").with_roi(region).encode_volume(_volume(), 12)


def test_uniform_tau_map_writes_the_plain_coders_bytes() -> None:
    import imagecodecs

    from fedcodec.shared.learned_lossy.hybrid import encode_base, load_residual_weights
    from fedcodec.shared.learned_lossy.weights import HYBRID_WEIGHTS
    from fedcodec.shared.neural.slice_coder import SliceParams, encode_slice

    weights, models = load_residual_weights(str(HYBRID_WEIGHTS))
    image = _volume(slices=1, rows=45, cols=38)[0].astype(np.int64)
    base = imagecodecs.jpeg2k_decode(encode_base(image.astype(np.uint16), 12, 28.0))
    for tau in (0, 3):
        plain, recon = encode_slice(image, SliceParams(12, tau), [base.astype(np.int64)],
                                    weights, models)
        mapped, recon2 = encode_slice(image, SliceParams(12, tau), [base.astype(np.int64)],
                                      weights, models, tau_map=np.full(image.shape, tau))
        np.testing.assert_array_equal(plain, mapped)
        np.testing.assert_array_equal(recon, recon2)


_SCRIPT = r"""
import sys, numpy as np
from fedcodec.shared.codecs.base import get_codec
from fedcodec.shared.learned_lossy.roi_mask import from_array
work = sys.argv[1]
inputs = np.load(work + "/input.npz")
codec = get_codec("neural:mode=roi,tau=0").with_roi(from_array(inputs["mask"]))
streams = codec.encode_volume(inputs["volume"], 12)
if sys.argv[2] == "encode":
    np.save(work + "/streams.npy", np.array(streams, dtype=object), allow_pickle=True)
else:
    theirs = list(np.load(work + "/streams.npy", allow_pickle=True))
    assert theirs == streams, "encoders in two processes wrote different bytes"
    np.save(work + "/decoded.npy", codec.decode_volume(theirs))
print("ok")
"""


def _run(work: Path, threads: int, action: str) -> None:
    run_with_threads(_SCRIPT, [str(work), action], threads)


def test_decode_in_another_process_with_other_threads_is_bit_exact(tmp_path: Path) -> None:
    volume = _volume(slices=1, rows=200, cols=180)  # groups large enough to run on 2 threads
    mask = np.ones(volume.shape, dtype=bool)
    mask[:, 30:120, 20:130] = ~_blob_mask((90, 110))  # ROI groups of > PARALLEL_MIN pixels
    np.savez(tmp_path / "input.npz", volume=volume, mask=mask)
    _run(tmp_path, 1, "encode")
    _run(tmp_path, 2, "decode")
    decoded = np.load(tmp_path / "decoded.npy")
    np.testing.assert_array_equal(decoded[mask], volume[mask])


# -- fedcodec compress --profile roi ----------------------------------------------------------

@pytest.fixture()
def study(tmp_path: Path) -> Path:
    folder = tmp_path / "study"
    folder.mkdir()
    shutil.copy(EMRI, folder / "emri_small.dcm")  # 10 frames of 64x64, 12 bits
    return folder


def _one_line_error(capsys, argv: list[str], expected: str) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and expected in err, err


def test_compress_roi_box_then_inspect_and_decompress(study: Path, tmp_path: Path,
                                                      capsys) -> None:
    fcz = tmp_path / "roi.fcz"
    assert main(["compress", str(study), "-o", str(fcz), "--profile", "roi",
                 "--roi-box", "16,16,48,40,2,8", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "profile roi" in out and "ROI verified max error 0 <= 0, outside max error" in out
    assert main(["inspect", str(fcz)]) == 0
    listing = capsys.readouterr().out
    assert "neural:mode=roi,tau=0" in listing and "ROI box 16,16,48,40,2,8 lossless" in listing

    out_dir = tmp_path / "dicom"
    assert main(["decompress", str(fcz), "-o", str(out_dir)]) == 0
    capsys.readouterr()
    original = pydicom.dcmread(EMRI).pixel_array
    files = sorted(out_dir.rglob("*.dcm"))
    decoded = np.stack([pydicom.dcmread(f).pixel_array for f in files])
    if decoded.shape[0] == 1:
        decoded = decoded[0]
    np.testing.assert_array_equal(decoded[2:8, 16:40, 16:48], original[2:8, 16:40, 16:48])
    assert np.abs(decoded.astype(int) - original).max() > 0
    ds = pydicom.dcmread(files[0])
    ratio = ds.LossyImageCompressionRatio
    first = ratio[0] if isinstance(ratio, pydicom.multival.MultiValue) else ratio
    assert ds.LossyImageCompression == "01" and float(first) > 1
    assert "profile roi" in ds.DerivationDescription and "ROI box" in ds.DerivationDescription


def test_compress_roi_mask_file_and_errors(study: Path, tmp_path: Path, capsys) -> None:
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[10:30, 12:50] = 1
    mask[40:50, 5:9] = 1
    np.save(tmp_path / "mask.npy", mask)
    fcz = tmp_path / "m.fcz"
    assert main(["compress", str(study), "-o", str(fcz), "--profile", "roi",
                 "--roi-mask", str(tmp_path / "mask.npy"), "--quiet"]) == 0
    assert "ROI verified max error 0 <= 0" in capsys.readouterr().out
    assert main(["inspect", str(fcz)]) == 0
    assert "ROI mask 64x64 lossless" in capsys.readouterr().out

    np.save(tmp_path / "bad.npy", np.ones((3, 64, 64)))
    base = ["compress", str(study), "-o", str(tmp_path / "x.fcz"), "--quiet"]
    _one_line_error(capsys, [*base, "--profile", "roi", "--roi-mask", str(tmp_path / "bad.npy")],
                    "ROI mask bad.npy has shape (3, 64, 64), but series")
    _one_line_error(capsys, [*base, "--profile", "roi", "--roi-mask", str(tmp_path / "no.npy")],
                    "no such ROI mask file")
    _one_line_error(capsys, [*base, "--profile", "roi", "--roi-box", "1,2,3"], "bad ROI box")
    _one_line_error(capsys, [*base, "--profile", "roi", "--roi-box", "70,0,80,10"],
                    "lies outside series")
    _one_line_error(capsys, [*base, "--profile", "archive", "--roi-box", "1,1,5,5"],
                    "--roi-box/--roi-mask need an ROI profile")
    _one_line_error(capsys, [*base, "--roi-box", "1,1,5,5"], "need an ROI profile")
    assert not (tmp_path / "x.fcz").exists()


def test_site_roi_profile_and_auto_rules_need_a_region(study: Path, tmp_path: Path) -> None:
    from fedcodec.client.compression import compress_study
    from fedcodec.shared.container import read_container
    from fedcodec.shared.profiles import rules_from_mapping

    rules = rules_from_mapping({"profiles": {"lesion": {"mode": "lossy", "roi_tau": 1}},
                                "default": "lesion"}, "site.toml")
    assert rules.get("lesion").describe() == "lesion (ROI tau 1, lossy outside)"
    with pytest.raises(FedcodecError, match="profile 'lesion' codes a region of interest"):
        compress_study(study, tmp_path / "a.fcz", profile="auto", rules=rules, progress=False)
    report = compress_study(study, tmp_path / "b.fcz", profile="auto", rules=rules,
                            progress=False, roi=parse_box("8,8,56,56"))
    assert report.series[0].roi_max_error <= 1 and report.codec_spec == "neural:mode=roi,tau=1"
    described = read_container(tmp_path / "b.fcz").header.coding_of(0).codec.describe
    assert described["roi"]["box"] == [8, 8, 56, 56] and described["roi_tau"] == 1
    assert read_container(tmp_path / "b.fcz").version == 1  # series coding = the study's
