"""The .fcz byte layout, field by field, as docs/container-format.md documents it.

These tests parse containers with their own ``struct`` calls at the documented offsets (not with
the reader's constants), so a change to the layout that the document does not follow fails here.
They also cut a small container at every byte and flip every byte of it: each must end in a
one-line CorruptDataError.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, MRImageStorage

from fedcodec.shared.codecs import get_codec
from fedcodec.shared.container import (
    CodecInfo,
    CodedSeries,
    CodedStudy,
    SeriesCoding,
    SeriesInfo,
    iter_streams,
    read_container,
    write_container,
)
from fedcodec.shared.errors import CorruptDataError
from fedcodec.shared.pixels import to_unsigned

MAGIC = bytes.fromhex("89 46 43 5A 0D 0A 1A 0A")
END_MAGIC = bytes.fromhex("46 43 5A 2D 45 4E 44 0A")


def _dataset(index: int, series_uid: str, implicit: bool) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = f"{series_uid}.{index + 1}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = series_uid
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.10.1.7"
    ds.PatientID = "P-7"
    ds.PatientName = "Test^Patient"
    ds.InstanceNumber = index + 1
    ds.Rows = ds.Columns = 16
    ds.add_new(0x00091010, "LO", f"private {index}")  # a private tag must survive too
    if not implicit:
        ds.preamble = b"\0" * 128  # as read from a Part-10 file; the other series has none
    return ds


def _series(
    uid: str, signed: bool, seed: int
) -> tuple[SeriesInfo, list[pydicom.Dataset], np.ndarray]:
    rng = np.random.default_rng(seed)
    bits = 12
    if signed:
        volume = rng.integers(-2048, 2048, size=(3, 16, 16)).astype(np.int16)
    else:
        volume = rng.integers(0, 4096, size=(3, 16, 16)).astype(np.uint16)
    unsigned, offset = to_unsigned(volume, bits, signed)
    info = SeriesInfo(
        series_uid=uid,
        study_uid="1.2.826.0.1.3680043.10.1.7",
        patient_id="P-7",
        description=f"series {uid[-1]}",
        modality="MR",
        shape=(3, 16, 16),
        dtype=str(volume.dtype),
        bits_stored=bits,
        signed=signed,
        offset=offset,
        rescale_slope=1.0,
        rescale_intercept=0.0,
        slice_ids=[f"{uid}/{i}" for i in range(3)],
        slice_sources=[(i, 0) for i in range(3)],
        slice_rescale=[(1.0, 0.0)] * 3,
        bits_allocated=16,
    )
    datasets = [_dataset(i, uid, implicit=signed) for i in range(3)]
    return info, datasets, unsigned


def _study(series_count: int = 1) -> tuple[CodedStudy, list[np.ndarray]]:
    codec = get_codec("zstd")
    coded, volumes = [], []
    for k in range(series_count):
        info, datasets, unsigned = _series(f"1.2.826.0.1.3680043.10.1.{k + 1}", k % 2 == 1, k)
        coded.append(CodedSeries(info, datasets, codec.encode_volume(unsigned, 12)))
        volumes.append(unsigned)
    study = CodedStudy(
        codec=CodecInfo("zstd", codec.describe(), None),
        mode="lossless",
        tau=0,
        quality=None,
        series=coded,
        writer="fedcodec test",
    )
    return study, volumes


def _as_written(dataset: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=False)
    return buffer.getvalue()


def _bytes(study: CodedStudy) -> bytes:
    buffer = io.BytesIO()
    written = write_container(buffer, study)
    assert written == len(buffer.getvalue())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def small() -> bytes:
    """A 3-slice 16x16 one-series study."""
    return _bytes(_study(1)[0])


def _read_everything(source: bytes | Path) -> None:
    container = read_container(source)
    container.verify()
    for index in range(len(container.series)):
        container.datasets(index)


# --- every documented field at its documented offset -------------------------------------


def test_every_documented_field_at_its_offset() -> None:
    study, volumes = _study(2)
    data = _bytes(study)

    assert data[0:8] == MAGIC
    version, flags, h, n = struct.unpack_from("<HHII", data, 8)
    (d,) = struct.unpack_from("<Q", data, 20)
    (meta_crc,) = struct.unpack_from("<I", data, 28)
    assert (version, flags) == (1, 0)
    assert n == 2 * (1 + 3)  # per series: one header blob + three slice streams
    assert len(data) == 32 + h + 16 * n + d + 16
    assert meta_crc == zlib.crc32(data[0:28] + data[32 : 32 + h + 16 * n])

    raw_header = data[32 : 32 + h]
    header = json.loads(raw_header)
    canonical = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert raw_header == canonical.encode("ascii")
    assert set(header) == {"codec", "mode", "tau", "quality", "profile", "writer", "series"}
    assert header["codec"]["spec"] == "zstd"
    assert header["codec"]["describe"] == json.loads(json.dumps(get_codec("zstd").describe()))
    assert header["codec"]["model_hash"] is None
    assert (header["mode"], header["tau"], header["quality"], header["profile"]) == (
        "lossless", 0, None, None,
    )
    assert header["writer"] == "fedcodec test"

    table_start, data_start = 32 + h, 32 + h + 16 * n
    table = [struct.unpack_from("<QII", data, table_start + 16 * i) for i in range(n)]
    position = 0
    streams = []
    for offset, length, crc in table:
        assert offset == position
        stream = data[data_start + offset : data_start + offset + length]
        assert zlib.crc32(stream) == crc
        streams.append(stream)
        position += length
    assert position == d

    codec = get_codec("zstd")
    for k, (entry, coded) in enumerate(zip(header["series"], study.series, strict=True)):
        info = coded.info
        assert entry["series_uid"] == info.series_uid
        assert entry["study_uid"] == info.study_uid
        assert entry["patient_id"] == "P-7"
        assert entry["description"] == info.description
        assert entry["modality"] == "MR"
        assert entry["part"] == 0
        assert entry["shape"] == [3, 16, 16]
        assert entry["dtype"] == ("int16" if k == 1 else "uint16")
        assert entry["bits_stored"] == 12 and entry["bits_allocated"] == 16
        assert entry["signed"] is (k == 1)
        assert entry["offset"] == (2048 if k == 1 else 0)
        assert (entry["rescale_slope"], entry["rescale_intercept"]) == (1.0, 0.0)
        assert entry["slice_rescale"] == [[1.0, 0.0]] * 3
        assert entry["slice_ids"] == [f"{info.series_uid}/{i}" for i in range(3)]
        assert entry["slice_sources"] == [[0, 0], [1, 0], [2, 0]]
        assert entry["mosaic_tiles"] == []
        # layout: header blob, then pixel streams, series after series
        assert entry["dicom_headers"]["stream"] == 4 * k
        assert entry["pixel_streams"] == {"first": 4 * k + 1, "count": 3}
        for i in range(3):
            pixels = codec.decode(streams[4 * k + 1 + i])
            np.testing.assert_array_equal(pixels, volumes[k][i])

        blob = entry["dicom_headers"]
        assert blob["compression"] == "zstd" and blob["datasets"] == 3
        raw = imagecodecs.zstd_decode(streams[blob["stream"]])
        assert len(raw) == blob["raw_length"]
        position = 0
        for original in coded.datasets:
            (length,) = struct.unpack_from("<I", raw, position)
            record = raw[position + 4 : position + 4 + length]
            if getattr(original, "preamble", None) is not None:
                assert record[128:132] == b"DICM"  # Part-10: preamble, DICM, file meta
            else:  # written like the original: file meta group (0002,xxxx) first, no preamble
                assert record[:2] == b"\x02\x00"
            assert record == _as_written(original)  # bit for bit
            parsed = pydicom.dcmread(io.BytesIO(record), force=True)
            assert parsed.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
            if not coded.info.signed:  # explicit VR: the private tag keeps its VR and value
                assert parsed == original
            position += 4 + length
        assert position == len(raw)

    total, end = struct.unpack_from("<Q8s", data, len(data) - 16)
    assert total == len(data) and end == END_MAGIC


def test_reader_exposes_the_same_fields() -> None:
    study, volumes = _study(2)
    container = read_container(_bytes(study))
    assert container.version == 1
    assert container.header.codec == study.codec
    assert container.header.mode == "lossless"
    for k, entry in enumerate(container.series):
        assert entry.info == study.series[k].info
        got = [_as_written(ds) for ds in container.datasets(k)]
        assert got == [_as_written(ds) for ds in study.series[k].datasets]
        decoded = get_codec(container.header.codec.spec).decode_volume(container.pixel_streams(k))
        np.testing.assert_array_equal(decoded, volumes[k])


def test_same_study_gives_the_same_bytes() -> None:
    assert _bytes(_study(2)[0]) == _bytes(_study(2)[0])


def test_one_slice_reads_without_the_others(tmp_path: Path) -> None:
    study, volumes = _study(1)
    path = tmp_path / "s.fcz"
    write_container(path, study)
    container = read_container(path)
    first, second, third = container.series[0].pixel_streams
    damaged = bytearray(path.read_bytes())
    damaged[container.stream_offset(first)] ^= 0xFF  # break slice 0 and slice 1 on disk
    damaged[container.stream_offset(second)] ^= 0xFF
    path.write_bytes(bytes(damaged))
    slice2 = get_codec("zstd").decode(container.read_stream(third))
    np.testing.assert_array_equal(slice2, volumes[0][2])
    with pytest.raises(CorruptDataError, match=f"^stream {first} checksum mismatch$"):
        container.read_stream(first)
    assert [i for i, _ in iter_streams(container, [third])] == [third]


def test_iter_streams_yields_every_stream_in_order(small: bytes) -> None:
    container = read_container(small)
    got = list(iter_streams(small))
    assert [i for i, _ in got] == list(range(container.stream_count))
    assert [s for _, s in got] == [container.read_stream(i) for i in range(container.stream_count)]


# --- truncation, flips, wrong magic or version ----------------------------------------------


@pytest.mark.timeout(60)
def test_truncation_at_every_byte_is_reported(small: bytes, tmp_path: Path) -> None:
    path = tmp_path / "cut.fcz"
    path.write_bytes(small)
    for cut in reversed(range(len(small))):
        os.truncate(path, cut)  # cheaper than rewriting the file for every length
        for source in (small[:cut], path):
            with pytest.raises(CorruptDataError) as caught:
                _read_everything(source)
            message = str(caught.value)
            assert message.startswith(f"truncated at byte {cut} "), (cut, message)
            assert "\n" not in message


@pytest.mark.timeout(60)
def test_every_single_byte_flip_is_detected(small: bytes) -> None:
    rng = np.random.default_rng(7)
    container = read_container(small)
    data_start = container.preamble.data_offset
    for position in range(len(small)):
        damaged = bytearray(small)
        damaged[position] ^= int(rng.integers(1, 256))
        with pytest.raises(CorruptDataError) as caught:
            _read_everything(bytes(damaged))
        message = str(caught.value)
        assert "\n" not in message
        if data_start <= position < len(small) - 16:  # inside a stream: named by number
            stream = next(
                i for i in range(container.stream_count)
                if container.stream_offset(i) <= position
                < container.stream_offset(i) + container.stream_length(i)
            )
            assert message == f"stream {stream} checksum mismatch"


def test_wrong_magic_is_not_an_fcz(small: bytes, tmp_path: Path) -> None:
    dicom = Path(pydicom.__file__).parents[1] / "data_store/data/emri_small.dcm"
    for data in (b"PK\x03\x04" + small[4:], b"hello", dicom.read_bytes()):
        with pytest.raises(CorruptDataError, match=r"^not an \.fcz file \(bad magic\)$"):
            read_container(data)


def test_unknown_version_and_flags_are_refused(small: bytes) -> None:
    with pytest.raises(CorruptDataError, match=r"^unsupported \.fcz version 3 "):
        read_container(small[:8] + struct.pack("<H", 3) + small[10:])
    with pytest.raises(CorruptDataError, match=r"^unsupported \.fcz flags 0x0001"):
        read_container(small[:10] + struct.pack("<H", 1) + small[12:])


def test_absurd_lengths_fail_before_any_allocation(small: bytes) -> None:
    huge_header = small[:12] + struct.pack("<I", 0xFFFFFFFF) + small[16:]
    with pytest.raises(CorruptDataError, match="header length 4294967295 exceeds"):
        read_container(huge_header)
    many_streams = small[:16] + struct.pack("<I", 0xFFFFFFFF) + small[20:]
    with pytest.raises(CorruptDataError, match="stream count 4294967295 exceeds"):
        read_container(many_streams)
    huge_data = small[:20] + struct.pack("<Q", 1 << 62) + small[28:]
    with pytest.raises(CorruptDataError, match="header checksum mismatch"):
        read_container(huge_data)


def test_trailing_data_and_bad_footer(small: bytes) -> None:
    with pytest.raises(CorruptDataError, match=r"^3 bytes of trailing data after byte \d+$"):
        read_container(small + b"abc")
    bad_end = small[:-8] + b"FCZ-BAD\n"
    with pytest.raises(CorruptDataError, match="^corrupt footer: end marker missing"):
        read_container(bad_end)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    from fedcodec.shared.errors import FedcodecError

    with pytest.raises(FedcodecError, match="^no such file: "):
        read_container(tmp_path / "nope.fcz")
    with pytest.raises(FedcodecError, match="is a folder, not an .fcz file$"):
        read_container(tmp_path)


# --- crafted metadata with valid checksums ---------------------------------------------------


def _reframe(
    data: bytes, header: dict | bytes, table: bytes | None = None, version: int | None = None
) -> bytes:
    """Rebuild a container around a new header (and table) with correct lengths and CRCs."""
    h, n = struct.unpack_from("<II", data, 12)
    (d,) = struct.unpack_from("<Q", data, 20)
    raw = (
        header
        if isinstance(header, bytes)
        else json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    )
    table = data[32 + h : 32 + h + 16 * n] if table is None else table
    streams = data[32 + h + 16 * n : 32 + h + 16 * n + d]
    if version is None:
        (version,) = struct.unpack_from("<H", data, 8)
    pre = MAGIC + struct.pack("<HHIIQ", version, 0, len(raw), len(table) // 16, d)
    pre += struct.pack("<I", zlib.crc32(pre + raw + table))
    body = pre + raw + table + streams
    return body + struct.pack("<Q", len(body) + 16) + END_MAGIC


def _header(data: bytes) -> dict:
    (h,) = struct.unpack_from("<I", data, 12)
    return json.loads(data[32 : 32 + h])


def test_reframe_helper_is_faithful(small: bytes) -> None:
    assert _reframe(small, _header(small)) == small


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda h: h["series"][0].update(shape=[3, 16, -1]), r"series\[0\]\.shape must be 3"),
        (lambda h: h["series"][0].update(shape=[3, 16]), r"series\[0\]\.shape must be 3"),
        (lambda h: h["series"][0].update(offset=7), r"series\[0\]\.offset 7 does not match"),
        (lambda h: h["series"][0].update(bits_stored=17), r"bits_stored = 17 is outside 1\.\.16"),
        (lambda h: h["series"][0].update(signed="no"), r"series\[0\]\.signed has the wrong type"),
        (lambda h: h["series"][0].update(dtype="float64"), r"dtype = 'float64' is not one of"),
        (lambda h: h["series"][0].update(slice_ids=["a"]), r"slice_ids must be 3 strings"),
        (lambda h: h["series"][0].update(slice_sources=[[0, 0], [1, 0], [3, 0]]),
         r"slice_sources must be 3 \[dataset, frame\] pairs"),
        (lambda h: h["series"][0]["pixel_streams"].update(first=0), r"stream 0 is claimed twice"),
        (lambda h: h["series"][0]["pixel_streams"].update(count=9), r"names streams up to 9, t"),
        # a forged count is refused before its range is built (it exhausted memory before)
        (lambda h: h["series"][0]["pixel_streams"].update(count=1 << 31),
         r"names streams up to 2147483648, the file has 4"),
        (lambda h: h["series"][0]["pixel_streams"].update(count=2), r"stream 3 belongs to no"),
        (lambda h: h["series"][0]["dicom_headers"].update(compression="lzma"), r"compression"),
        (lambda h: h.update(mode="fast"), r"header\.mode = 'fast' is not one of"),
        (lambda h: h.update(quality=0), r"header\.quality = 0 is outside 1\.\.100"),
        (lambda h: h.pop("codec"), r"header\.codec is missing"),
        (lambda h: h.update(series={}), r"header\.series has the wrong type"),
    ],
)
def test_crafted_headers_are_refused(small: bytes, edit, message: str) -> None:
    header = _header(small)
    edit(header)
    with pytest.raises(CorruptDataError, match="^corrupt header: .*" + message):
        read_container(_reframe(small, header))


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[" * 100_000 + b"]" * 100_000, b'{"tau": NaN}', b"\xff\xfe", b"[]"],
)
def test_malformed_json_is_refused(small: bytes, raw: bytes) -> None:
    with pytest.raises(CorruptDataError, match="^corrupt header: "):
        read_container(_reframe(small, raw))


def test_unknown_header_keys_are_ignored(small: bytes) -> None:
    header = _header(small)
    header["added_in_a_later_minor_version"] = {"x": 1}
    header["series"][0]["also_new"] = True
    assert read_container(_reframe(small, header)).header == read_container(small).header


def test_stream_table_must_tile_the_data(small: bytes) -> None:
    h, n = struct.unpack_from("<II", small, 12)
    table = bytearray(small[32 + h : 32 + h + 16 * n])
    offset, length, crc = struct.unpack_from("<QII", table, 16)
    struct.pack_into("<QII", table, 16, offset + 1, length, crc)
    with pytest.raises(CorruptDataError, match="^corrupt stream table: stream 1 starts at"):
        read_container(_reframe(small, _header(small), bytes(table)))


def test_header_blob_that_inflates_past_its_declared_length(small: bytes) -> None:
    header = _header(small)
    header["series"][0]["dicom_headers"]["raw_length"] -= 10
    container = read_container(_reframe(small, header))
    with pytest.raises(CorruptDataError, match="^corrupt DICOM headers in series 0: zstd"):
        container.datasets(0)
    header["series"][0]["dicom_headers"]["raw_length"] = 1 << 40
    container = read_container(_reframe(small, header))
    with pytest.raises(CorruptDataError, match="declares 1099511627776 bytes of headers"):
        container.datasets(0)


# --- writing ---------------------------------------------------------------------------------


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study, _ = _study(1)
    target = tmp_path / "study.fcz"
    target.write_bytes(b"previous contents")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_container(target, study)
    assert target.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.fcz"]
    monkeypatch.undo()
    size = write_container(target, study)
    assert target.stat().st_size == size
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # like a plain open(), not mkstemp's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.fcz"]


def test_writer_refuses_what_it_could_not_read(tmp_path: Path) -> None:
    study, _ = _study(1)
    info = study.series[0].info
    bad = SeriesInfo(**{**info.__dict__, "slice_sources": [(0, 0), (1, 0), (5, 0)]})
    study.series[0] = CodedSeries(bad, study.series[0].datasets, study.series[0].streams)
    with pytest.raises(ValueError, match="refusing to write an invalid container"):
        write_container(tmp_path / "x.fcz", study)
    assert not list(tmp_path.iterdir())


# --- version 2: per-series profile and coding ------------------------------------------------


def _mixed_study() -> tuple[CodedStudy, list[np.ndarray]]:
    """Series 0 coded like the study (zstd), series 1 with its own codec (jxl)."""
    study, volumes = _study(2)
    jxl = get_codec("jxl")
    own = SeriesCoding(CodecInfo("jxl", jxl.describe(), None), "lossless", 0, None)
    second = study.series[1]
    study.series[1] = CodedSeries(
        second.info, second.datasets, jxl.encode_volume(volumes[1], 12), "archive", own
    )
    study.series[0].profile = "diagnostic"
    study.profile = "auto"
    return study, volumes


def test_series_profile_and_coding_fields() -> None:
    study, volumes = _mixed_study()
    data = _bytes(study)
    version, flags = struct.unpack_from("<HH", data, 8)
    assert (version, flags) == (2, 0)  # a series has its own coding
    header = _header(data)
    assert header["profile"] == "auto"
    first, second = header["series"]
    assert first["profile"] == "diagnostic" and "coding" not in first
    assert second["profile"] == "archive"
    assert second["coding"] == {
        "codec": {"spec": "jxl", "describe": json.loads(json.dumps(get_codec("jxl").describe())),
                  "model_hash": None},
        "mode": "lossless",
        "tau": 0,
        "quality": None,
    }
    container = read_container(data)
    assert container.version == 2
    assert container.header.coding_of(0).codec.spec == "zstd"
    assert container.header.coding_of(1) == study.series[1].coding
    for index, volume in enumerate(volumes):
        codec = get_codec(container.header.coding_of(index).codec.spec)
        np.testing.assert_array_equal(codec.decode_volume(container.pixel_streams(index)), volume)


def test_a_coding_equal_to_the_study_is_not_repeated() -> None:
    study, _ = _study(2)
    same = SeriesCoding(study.codec, study.mode, study.tau, study.quality)
    for coded in study.series:
        coded.coding, coded.profile = same, "archive"
    data = _bytes(study)
    assert struct.unpack_from("<H", data, 8) == (1,)  # still readable by version-1 readers
    assert all("coding" not in s and s["profile"] == "archive" for s in _header(data)["series"])


def test_version_1_headers_without_series_profile_still_read(small: bytes) -> None:
    header = _header(small)
    assert header["series"][0].pop("profile") is None
    assert read_container(_reframe(small, header)).series[0].profile is None


def test_series_coding_needs_version_2(small: bytes) -> None:
    header = _header(small)
    header["series"][0]["coding"] = {
        "codec": header["codec"], "mode": "lossless", "tau": 0, "quality": None,
    }
    with pytest.raises(CorruptDataError, match=r"series\[0\]\.coding needs format version 2, "
                       r"the file says 1"):
        read_container(_reframe(small, header))
    assert read_container(_reframe(small, header, version=2)).header.coding_of(0).mode == (
        "lossless"
    )


@pytest.mark.parametrize(
    ("coding", "message"),
    [
        ({"mode": "lossless", "tau": 0, "quality": None}, r"series\[0\]\.coding\.codec is missing"),
        ({"codec": {"spec": "zstd", "describe": {}, "model_hash": None}, "mode": "fast", "tau": 0,
          "quality": None}, r"series\[0\]\.coding\.mode = 'fast'"),
        ({"codec": {"spec": "zstd", "describe": {}, "model_hash": None}, "mode": "lossy",
          "tau": -1, "quality": None}, r"series\[0\]\.coding\.tau = -1 is outside"),
        ("jxl", r"series\[0\]\.coding must be an object"),
    ],
)
def test_crafted_series_coding_is_refused(small: bytes, coding, message: str) -> None:
    header = _header(small)
    header["series"][0]["coding"] = coding
    with pytest.raises(CorruptDataError, match="^corrupt header: " + message):
        read_container(_reframe(small, header, version=2))
