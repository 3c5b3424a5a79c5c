"""De-identify DICOM files and folders on disk, all or nothing.

Files are read and written with pydicom directly (a byte-level copy of everything that is kept, so
pixel data stay bit-identical). A folder run stages its output next to the destination and renames
it into place only when every file succeeded: a corrupt input stops the run and leaves no output
at all, never a half de-identified export. Files that are not DICOM (README, NIfTI) are skipped and
reported, as the reader does.

Output layout: ``OUT/<new StudyInstanceUID>/<new SeriesInstanceUID>/<new SOPInstanceUID>.dcm``;
input file and folder names are not reused because they often carry patient names or dates.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from fedcodec.shared.atomic_files import write_atomic
from fedcodec.shared.deid.basic_profile import deidentify
from fedcodec.shared.deid.options import DeidOptions
from fedcodec.shared.deid.report import DeidReport
from fedcodec.shared.deid.uid_mapping import UidMapper
from fedcodec.shared.dicom.series import SkippedFile
from fedcodec.shared.errors import CorruptDataError, FedcodecError
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from tqdm import tqdm

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_ITEM = 0xFFFEE000
_SEQUENCE_DELIMITER = 0xFFFEE0DD


class NotDicomError(FedcodecError):
    """The file is not DICOM at all (as opposed to a damaged DICOM file)."""


@dataclass
class DeidFolderResult:
    """What a folder run wrote, what it passed over, and the counts for the audit trail."""

    written: list[Path] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    report: DeidReport = field(default_factory=DeidReport)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def _looks_like_bare_dataset(head: bytes) -> bool:
    """A data set without preamble and meta: it starts with a group 0008 tag."""
    if len(head) < 8:
        return False
    return (head[:2] == b"\x08\x00" and head[3] == 0) or head[:3] == b"\x00\x08\x00"


def read_dicom_file(path: Path) -> Dataset:
    """Read ``path`` fully and check its pixel data are all there.

    Raises :class:`NotDicomError` for a non-DICOM file and :class:`CorruptDataError` for a
    truncated or malformed one (short pixel data, broken encapsulation, unparsable header).
    """
    path = Path(path)
    try:
        try:
            ds = pydicom.dcmread(path)
        except InvalidDicomError:
            with path.open("rb") as handle:
                head = handle.read(8)
            if not _looks_like_bare_dataset(head):
                raise NotDicomError(f"{path}: not a DICOM file (no 'DICM' prefix)") from None
            ds = pydicom.dcmread(path, force=True)
        _check_complete(ds, path)
        for _ in ds.iterall():  # parse every element now, so damage shows here
            pass
        _check_pixel_data(ds, path)
    except FedcodecError:
        raise
    except FileNotFoundError:
        raise FedcodecError(f"no such file: {path}") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types (even NotImplementedError)
        raise CorruptDataError(f"{path}: truncated or corrupt DICOM ({_one_line(exc)})") from None
    return ds


def _check_complete(ds: Dataset, path: Path) -> None:
    """pydicom reads a file cut short without complaint; find the signs of it."""
    for raw in ds.elements():
        length, value = getattr(raw, "length", None), getattr(raw, "value", None)
        if isinstance(value, bytes) and length not in (None, 0xFFFFFFFF) and len(value) < length:
            raise CorruptDataError(
                f"{path}: truncated DICOM: element {raw.tag} has {len(value)} of {length} bytes"
            )


def _check_pixel_data(ds: Dataset, path: Path) -> None:
    if not any(tag in ds for tag in (0x7FE00008, 0x7FE00009, 0x7FE00010)):
        if "Image Storage" in getattr(ds.get("SOPClassUID"), "name", "") or "Rows" in ds:
            raise CorruptDataError(f"{path}: truncated DICOM: an image without pixel data")
        return
    if "PixelData" not in ds:
        return
    data = ds.PixelData or b""
    syntax = ds.file_meta.get("TransferSyntaxUID") if getattr(ds, "file_meta", None) else None
    frames = int(ds.get("NumberOfFrames") or 1)
    if syntax is not None and syntax.is_encapsulated:
        fragments = _count_fragments(data, path)
        if fragments < frames:
            raise CorruptDataError(
                f"{path}: truncated DICOM: {fragments} pixel data fragments for {frames} frames"
            )
        return
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        bits = int(ds.BitsAllocated)
        samples = int(ds.get("SamplesPerPixel") or 1)
    except (AttributeError, TypeError, ValueError):
        raise CorruptDataError(f"{path}: pixel data without a usable image pixel module") from None
    expected = (rows * columns * samples * frames * bits + 7) // 8
    if len(data) < expected:
        raise CorruptDataError(
            f"{path}: truncated DICOM: {len(data)} bytes of pixel data, {expected} expected"
        )


def _count_fragments(data: bytes, path: Path) -> int:
    """Fragments after the Basic Offset Table; raises on a broken item structure."""
    position, items = 0, 0
    while position + 8 <= len(data):
        group, element, length = struct.unpack_from("<HHI", data, position)
        tag = (group << 16) | element
        if tag == _SEQUENCE_DELIMITER:
            break
        if tag != _ITEM or length == 0xFFFFFFFF or position + 8 + length > len(data):
            raise CorruptDataError(f"{path}: corrupt encapsulated pixel data at byte {position}")
        position += 8 + length
        items += 1
    else:
        if position != len(data):
            raise CorruptDataError(f"{path}: truncated encapsulated pixel data")
    return max(items - 1, 0)


def encode_dicom(ds: Dataset) -> bytes:
    """``ds`` as PS3.10 file bytes (zeroed preamble, file meta from ``ds.file_meta``)."""
    buffer = io.BytesIO()
    try:
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on malformed values
        message = f"cannot encode the de-identified data set: {_one_line(exc)}"
        raise CorruptDataError(message) from None
    return buffer.getvalue()


def write_bytes_atomically(data: bytes, destination: Path) -> None:
    """Write via a temporary file in the same folder, fsync, then rename over ``destination``."""
    write_atomic(Path(destination), data)


def deidentify_file(
    source: Path,
    destination: Path,
    *,
    uid_key: bytes | UidMapper,
    options: DeidOptions = DeidOptions(),
    report: DeidReport | None = None,
) -> Path:
    """De-identify one file into ``destination`` (written atomically); returns ``destination``."""
    ds = read_dicom_file(source)
    _require_storable(ds, Path(source))
    out = deidentify(ds, uid_key=uid_key, options=options, report=report)
    write_bytes_atomically(encode_dicom(out), Path(destination))
    return Path(destination)


def _require_storable(ds: Dataset, path: Path) -> None:
    if not ds.get("SOPClassUID") or not ds.get("SOPInstanceUID"):
        raise CorruptDataError(f"{path}: no SOP Class/Instance UID, not a storable DICOM instance")


def output_path(ds: Dataset) -> Path:
    """``<study>/<series>/<instance>.dcm`` from the (already replaced) UIDs."""
    study = str(ds.get("StudyInstanceUID") or "no-study")
    series = str(ds.get("SeriesInstanceUID") or "no-series")
    return Path(study, series, f"{ds.SOPInstanceUID}.dcm")


def deidentify_folder(
    source_dir: Path,
    output_dir: Path,
    *,
    uid_key: bytes | UidMapper,
    options: DeidOptions = DeidOptions(),
    progress: bool = False,
) -> DeidFolderResult:
    """De-identify every DICOM file under ``source_dir`` into the new folder ``output_dir``.

    ``output_dir`` must not exist or be empty. All or nothing: on any error (a corrupt file, a
    refused burned-in image, a full disk) the staged output is deleted and the error re-raised.
    """
    source_dir, output_dir = Path(source_dir), Path(output_dir)
    if not source_dir.is_dir():
        raise FedcodecError(f"no such folder: {source_dir}")
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise FedcodecError(f"output folder exists and is not empty: {output_dir}")
    if output_dir.resolve().is_relative_to(source_dir.resolve()):
        raise FedcodecError(f"output folder {output_dir} is inside the input folder {source_dir}")
    files = sorted(p for p in source_dir.rglob("*") if p.is_file())
    mapper = uid_key if isinstance(uid_key, UidMapper) else UidMapper(uid_key)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(
        tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".partial", dir=output_dir.parent)
    )
    result = DeidFolderResult()
    placed: dict[Path, str] = {}
    try:
        for path in tqdm(files, desc="De-identifying", unit="file", disable=not progress):
            try:
                ds = read_dicom_file(path)
            except NotDicomError as exc:
                result.skipped.append(SkippedFile(path, str(exc).removeprefix(f"{path}: ")))
                continue
            if str(ds.get("SOPClassUID", "")) == MEDIA_STORAGE_DIRECTORY:
                reason = "DICOMDIR lists the original file names; rebuild it from the output"
                result.skipped.append(SkippedFile(path, reason))
                continue
            _require_storable(ds, path)
            try:
                out = deidentify(ds, uid_key=mapper, options=options, report=result.report)
            except FedcodecError as exc:
                raise type(exc)(f"{path}: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - a malformed value pydicom cannot convert
                raise CorruptDataError(f"{path}: cannot de-identify: {_one_line(exc)}") from None
            data = encode_dicom(out)
            relative = _place(stage, output_path(out), data, placed)
            if relative is None:
                result.skipped.append(SkippedFile(path, "identical to another input file"))
                continue
            write_bytes_atomically(data, stage / relative)
            result.written.append(relative)
        if not result.written:
            others = len(result.skipped)
            raise FedcodecError(f"no DICOM files in {source_dir} ({others} other files)")
        if output_dir.exists():
            output_dir.rmdir()
        stage.rename(output_dir)
        result.written = sorted(output_dir.rglob("*.dcm"))  # final names (see _place)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return result


def _place(stage: Path, relative: Path, data: bytes, placed: dict[Path, str]) -> Path | None:
    """Where to write ``data``: ``relative``, unless another file already claimed that name.

    Two inputs can share a SOP Instance UID (the same image stored twice, e.g. native and JPEG
    2000). Then *both* are named ``<uid>-<8 hex of SHA-256 of the bytes>.dcm`` (the first is
    renamed), so names do not depend on the order files were found and a second run over the
    output gives the same tree. Byte-identical duplicates are written once (None).
    """
    digest = hashlib.sha256(data).hexdigest()[:8]
    first = placed.get(relative)
    if first is None:
        placed[relative] = digest
        return relative
    if first != "":
        (stage / relative).rename(stage / _with_digest(relative, first))
        placed[relative] = ""
    target = _with_digest(relative, digest)
    return None if (stage / target).exists() else target


def _with_digest(relative: Path, digest: str) -> Path:
    return relative.with_name(f"{relative.stem}-{digest}{relative.suffix}")
