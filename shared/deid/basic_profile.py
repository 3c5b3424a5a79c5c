"""De-identify one DICOM dataset with the PS3.15 Basic Application Level Confidentiality Profile.

The table (``profile_table.py``, generated from PS3.15 2024b Table E.1-1) gives each listed
attribute an action; this module applies it wherever the attribute occurs, at any sequence depth:

- ``X`` remove, ``Z`` empty (a sequence becomes empty), ``D`` a fixed dummy valid for the VR
  (``dummy_values.py``), ``U`` a keyed replacement UID (``uid_mapping.py``), ``K`` keep.
- Combinations (``Z/D``, ``X/Z``, ``X/D``, ``X/Z/D``, ``X/Z/U*``) take the leftmost, strictest
  action unless the top level of the MR IOD requires the attribute (``iod_requirements.py``).
- ``D`` on a sequence keeps its items but gives *every* element inside a dummy (UIDs mapped,
  removals and emptying still applied): PS3.15 does not say what a dummy sequence is, and this is
  the reading that leaves nothing of the original content.
- Private attributes (odd groups, their creators and private sequences) are removed, unless the
  Retain Safe Private Option keeps a checked numeric attribute (``safe_private.py``).
- Beyond the table (fedcodec's additions, on by default as ``strict_unlisted``): whole overlay
  groups 60xx (the table removes overlay data and comments; labels and descriptions are free text
  too), command group 0000, group lengths, public tags unknown to the data dictionary; person
  names and dates/times not in the table get dummies; instance UIDs not in the table (e.g. SOP
  Instance UID of Concatenation Source) are mapped, class and transfer syntax UIDs are kept.
- The file meta is rebuilt (Source AE titles and private meta information dropped), the preamble
  is zeroed when written, and Patient Identity Removed / De-identification Method (Code Sequence)
  record what was done.

Pixel data are never touched: the same bytes object is carried over, so lossless stays lossless.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from fedcodec.shared.deid import profile_table
from fedcodec.shared.deid.dummy_values import concrete_vr, dummy_value
from fedcodec.shared.deid.iod_requirements import required_type, resolve_action
from fedcodec.shared.deid.options import DeidOptions
from fedcodec.shared.deid.reappearing_values import REASON, identifying_values, scrub_kept_text
from fedcodec.shared.deid.report import DeidReport
from fedcodec.shared.deid.safe_private import (
    SAFE_CREATORS,
    checked_safe_element,
    safe_private_rule,
)
from fedcodec.shared.deid.uid_mapping import UidMapper
from fedcodec.shared.errors import CorruptDataError, FedcodecError
from pydicom.datadict import dictionary_VR, get_entry, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    UID_dictionary,
)

PATIENT_ID = 0x00100020
BURNED_IN_ANNOTATION = 0x00280301
PIXEL_DATA_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
IMPLEMENTATION_VERSION_NAME = "FEDCODEC_DEID_1"
PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
SAFE_PRIVATE_CODE = ("113111", "Retain Safe Private Option")
_SYNTAX_BY_ENCODING = {
    (True, True): ImplicitVRLittleEndian,
    (False, True): ExplicitVRLittleEndian,
    (False, False): ExplicitVRBigEndian,
}
# UI attributes that name a kind of thing (a SOP class, a transfer syntax, a coding scheme), not
# an instance: the strict rule for unlisted UIDs leaves them alone.
_KIND_UID_KEYWORDS = frozenset(
    {
        "SOPClassesSupported",
        "SOPClassesInStudy",
        "PertinentSOPClassesInStudy",
        "PertinentSOPClassesInSeries",
        "CodingSchemeUID",
        "MappingResourceUID",
        "ContextUID",
    }
)


class DeidentificationRefusedError(FedcodecError):
    """The dataset cannot be made safe by header de-identification alone."""


@dataclass
class _Context:
    mapper: UidMapper
    options: DeidOptions
    report: DeidReport
    sop_class_uid: str
    little_endian: bool
    identifiers: set[str] = field(default_factory=set)
    """Values of identifying attributes removed or replaced so far (searched in kept text)."""
    kept: list[DataElement] = field(default_factory=list)
    """The elements kept as they were (action K): the only ones searched for those values."""


def deidentify(
    ds: Dataset,
    *,
    uid_key: bytes | UidMapper,
    options: DeidOptions = DeidOptions(),
    report: DeidReport | None = None,
) -> Dataset:
    """A de-identified copy of ``ds`` (``ds`` itself is not modified).

    ``uid_key`` is the site's secret (or a :class:`UidMapper` built from it, to share its cache
    over many datasets). Counts of what was done are added to ``report`` when given.
    Raises :class:`DeidentificationRefusedError` for Burned In Annotation = YES (unless allowed)
    and :class:`CorruptDataError` when an element cannot be parsed.
    """
    mapper = uid_key if isinstance(uid_key, UidMapper) else UidMapper(uid_key)
    burned_in = str(ds.get(BURNED_IN_ANNOTATION, DataElement(0, "CS", "")).value or "")
    if burned_in.strip().upper() == "YES" and not options.allow_burned_in_annotation:
        raise DeidentificationRefusedError(
            "Burned In Annotation is YES: the pixels may show identifying text, which fedcodec "
            "does not clean (pass allow_burned_in_annotation / --allow-burned-in to override)"
        )
    encoding = getattr(ds, "original_encoding", (False, True))
    local = DeidReport()
    context = _Context(
        mapper=mapper,
        options=options,
        report=local,
        sop_class_uid=str(ds.get("SOPClassUID", "") or ""),
        little_endian=encoding[1] is not False,
    )
    try:
        out = _clean_items(ds, context, top_level=True, dummy=False)
        for tag in scrub_kept_text(context.kept, context.identifiers):
            local.record("R", REASON, _label(tag, dictionary_description_or(tag)))
        source_meta = getattr(ds, "file_meta", None) or FileMetaDataset()
        out.file_meta = _rebuilt_file_meta(source_meta, out, context, encoding)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, EOFError) as exc:
        raise CorruptDataError(f"cannot de-identify: unreadable element ({exc})") from None
    _mark_deidentified(out, options)
    if encoding[0] is not None and encoding[1] is not None:
        out.set_original_encoding(encoding[0], encoding[1], getattr(ds, "_character_set", None))
    local.datasets = 1
    if burned_in.strip().upper() == "YES":
        local.warnings.append("Burned In Annotation is YES: pixel data passed through uncleaned")
    if report is not None:
        report.merge(local)
    return out


def _clean_items(ds: Dataset, context: _Context, *, top_level: bool, dummy: bool) -> Dataset:
    out = Dataset()
    for element in ds:
        cleaned = _clean_element(element, context, top_level=top_level, dummy=dummy)
        if cleaned is not None:
            out.add(cleaned)
    if context.options.retain_safe_private:
        _drop_unused_private_creators(out)
    return out


def dictionary_description_or(tag: int, default: str = "private or unknown attribute") -> str:
    try:
        return str(get_entry(tag)[2])
    except KeyError:
        return default


def _table_rule(tag: int) -> tuple[str, str] | None:
    rule = profile_table.ATTRIBUTES.get(tag)
    if rule is not None:
        return rule[0], rule[1]
    for mask, value, action, name, _ in profile_table.PATTERNS:
        if tag & mask == value:
            return action, name
    return None


def _is_known_public(tag: int) -> bool:
    try:
        get_entry(tag)
    except KeyError:
        return False
    return True


def _label(tag: int, name: str) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {name}"


def _clean_element(
    element: DataElement, context: _Context, *, top_level: bool, dummy: bool
) -> DataElement | None:
    tag = int(element.tag)
    group, number = tag >> 16, tag & 0xFFFF
    report = context.report
    if group % 2:
        return _clean_private(element, context)
    reason = "table"
    if group == 0x0000:
        action, reason, name = "X", "command-group", "command element"
    elif group == 0x0002:
        action, reason, name = "X", "file-meta", "file meta element in the data set"
    elif number == 0x0000:
        action, reason, name = "X", "group-length", "group length"
    elif group & 0xFF00 == 0x6000:
        action, reason, name = "X", "overlay", "overlay group element"
    elif (rule := _table_rule(tag)) is not None:
        name = rule[1]
        required = required_type(context.sop_class_uid, tag) if top_level else None
        action = resolve_action(rule[0], required)
    else:
        name = element.name or "unknown public tag"
        action, reason = _unlisted_action(element, context)
    vr = _vr(element)
    if dummy and action not in ("X", "Z"):
        action = "U" if vr == "UI" else "D"
    if tag == PATIENT_ID and action in ("Z", "D") and context.options.pseudonymize_patient_id:
        if str(element.value or "").strip():
            action = "P"
    if action != "K":
        context.identifiers |= identifying_values(element, vr)
    if action == "X":
        report.record("X", reason, _label(tag, name))
        return None
    if action == "Z":
        report.record("Z", reason, _label(tag, name))
        return DataElement(tag, vr, Sequence([]) if vr == "SQ" else None)
    if action == "P":
        report.record("P", reason, _label(tag, name))
        return DataElement(tag, vr, context.mapper.pseudonym(str(element.value)))
    if vr == "SQ":
        if action != "K":
            report.record(action, reason, _label(tag, name))
        items = [
            _clean_items(item, context, top_level=False, dummy=dummy or action == "D")
            for item in (element.value or [])
        ]
        return DataElement(tag, "SQ", Sequence(items))
    if vr == "UI" and action in ("U", "D"):
        report.record("U", reason, _label(tag, name))
        keep_known = reason == "unlisted-uid"
        mapped = _map_uids(element.value, context.mapper, keep_known=keep_known)
        return DataElement(tag, "UI", mapped)
    if action in ("D", "U"):
        report.record("D", reason, _label(tag, name))
        return DataElement(tag, vr, dummy_value(vr))
    if reason == "table":
        report.record("K", reason, _label(tag, name))
    kept = copy.deepcopy(element)
    context.kept.append(kept)
    return kept


def _vr(element: DataElement) -> str:
    vr = concrete_vr(element.VR)
    if vr == "UN" and _is_known_public(int(element.tag)):
        try:
            return concrete_vr(dictionary_VR(element.tag))
        except KeyError:
            return vr
    return vr


def _unlisted_action(element: DataElement, context: _Context) -> tuple[str, str]:
    """The action for a public attribute the table does not list (``K`` unless strict)."""
    tag = int(element.tag)
    if tag in PIXEL_DATA_TAGS or not context.options.strict_unlisted:
        return "K", "unlisted"
    if not _is_known_public(tag):
        return "X", "unknown-tag"
    vr = _vr(element)
    if vr == "PN":
        return "D", "unlisted-name"
    if vr in ("DA", "DT", "TM"):
        return "D", "unlisted-date"
    if vr == "UI" and _is_instance_uid_attribute(tag):
        values = _uid_values(element.value)
        if any(v not in UID_dictionary and not context.mapper.is_mapped(v) for v in values):
            return "U", "unlisted-uid"
    return "K", "unlisted"


def _is_instance_uid_attribute(tag: int) -> bool:
    keyword = keyword_for_tag(tag)
    return not (
        keyword.endswith("ClassUID")
        or "ClassUIDIn" in keyword
        or "TransferSyntaxUID" in keyword
        or keyword in _KIND_UID_KEYWORDS
    )


def _uid_values(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, MultiValue | list | tuple):
        return [str(v) for v in value]
    return [str(value)] if str(value) else []


def _map_uids(value: object, mapper: UidMapper, *, keep_known: bool) -> object:
    """Every UID in ``value`` mapped; registered DICOM UIDs kept when ``keep_known``."""
    mapped = [
        v if keep_known and v in UID_dictionary else mapper.map_uid(v) for v in _uid_values(value)
    ]
    if not mapped:
        return None
    return mapped if len(mapped) > 1 else mapped[0]


def _clean_private(element: DataElement, context: _Context) -> DataElement | None:
    tag = int(element.tag)
    if context.options.retain_safe_private:
        number = tag & 0xFFFF
        if 0x0010 <= number <= 0x00FF:
            if str(element.value or "").strip() in SAFE_CREATORS:
                return copy.deepcopy(element)
        elif rule := safe_private_rule(getattr(element, "private_creator", None), tag):
            kept = checked_safe_element(element, rule[0], context.little_endian)
            if kept is not None:
                context.report.record("C", "private", f"{element.private_creator} {rule[1]}")
                return kept
    context.report.record("X", "private", "private attribute")
    context.identifiers |= identifying_values(element, _vr(element))
    return None


def _drop_unused_private_creators(ds: Dataset) -> None:
    """Remove private creators left without any element in their block."""
    used = {
        (int(e.tag) >> 16, (int(e.tag) >> 8) & 0xFF)
        for e in ds
        if e.tag.is_private and int(e.tag) & 0xFFFF >= 0x1000
    }
    for element in list(ds):
        tag = int(element.tag)
        if element.tag.is_private and 0x0010 <= tag & 0xFFFF <= 0x00FF:
            if (tag >> 16, tag & 0xFF) not in used:
                del ds[tag]


def _rebuilt_file_meta(
    source: FileMetaDataset, out: Dataset, context: _Context, encoding: tuple
) -> FileMetaDataset:
    """Only what PS3.10 needs, with the new instance UID; AE titles and private info dropped.

    A data set read without file meta gets the transfer syntax it was read with.
    """
    meta = FileMetaDataset()
    sop_class = out.get("SOPClassUID") or source.get("MediaStorageSOPClassUID")
    if sop_class:
        meta.MediaStorageSOPClassUID = sop_class
    sop_instance = out.get("SOPInstanceUID")
    if not sop_instance and source.get("MediaStorageSOPInstanceUID"):
        sop_instance = context.mapper.map_uid(str(source.MediaStorageSOPInstanceUID))
    if sop_instance:
        meta.MediaStorageSOPInstanceUID = sop_instance
    if "TransferSyntaxUID" in source:
        meta.TransferSyntaxUID = source.TransferSyntaxUID
    elif tuple(encoding[:2]) in _SYNTAX_BY_ENCODING:
        meta.TransferSyntaxUID = _SYNTAX_BY_ENCODING[tuple(encoding[:2])]
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    kept = {0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013, 0x00020000}
    for element in source:
        if int(element.tag) not in kept:
            context.report.record("X", "file-meta", _label(int(element.tag), element.name))
    return meta


def _code_item(code: tuple[str, str]) -> Dataset:
    item = Dataset()
    item.CodeValue = code[0]
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = code[1]
    return item


def _edition() -> str:
    """``'2024b'`` from ``'DICOM PS3.15 2024b, Table E.1-1'``."""
    return profile_table.EDITION.split(",")[0].split()[-1]


def method_description(options: DeidOptions) -> list[str]:
    """The De-identification Method (0012,0063) values (LO, each at most 64 characters)."""
    values = [
        f"PS3.15 Basic Profile ({_edition()} table)",
        "fedcodec: UIDs = HMAC-SHA256 site key, 2.25 form",
        "fedcodec: pixel data unchanged",
    ]
    if options.strict_unlisted:
        values.append("fedcodec: unlisted PN/DA/DT/TM dummied, instance UIDs mapped")
    if options.pseudonymize_patient_id:
        values.append("fedcodec: Patient ID = keyed pseudonym")
    if options.retain_safe_private:
        values.append("Retain Safe Private Option: checked numeric list")
    return values


def _mark_deidentified(out: Dataset, options: DeidOptions) -> None:
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = method_description(options)
    codes = [PROFILE_CODE] + ([SAFE_PRIVATE_CODE] if options.retain_safe_private else [])
    out.DeidentificationMethodCodeSequence = Sequence([_code_item(code) for code in codes])
    if options.strict_unlisted:
        out.LongitudinalTemporalInformationModified = "REMOVED"
