"""One rule of ``--profile auto``: which series it matches, and the profile it gives them.

Why not the Series Description alone: de-identification (PS3.15 Basic Profile) removes Series
Description and Protocol Name, so on the data that leaves a site a description rule never fires
and every series fell back to the default. A rule can therefore also test attributes the Basic
Profile keeps (Image Type, Scanning Sequence, Sequence Variant, Sequence Name, MR Acquisition
Type, Modality, ...) and the number of slices. Every condition a rule gives must hold; a rule
with a description pattern simply does not match a series without a description, so the next
rule (often an attribute rule) decides.

Attributes are read from the series' first header. A multi-valued attribute (Image Type) matches
when any one value matches, so ``^LOCALIZER$`` tests for the value LOCALIZER. Attributes that
de-identification removes or replaces are refused in rules, since ``auto`` would silently not see
them on de-identified data (the trap this module exists to avoid).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword

from fedcodec.shared.deid.profile_table import ATTRIBUTES as DEID_TABLE
from fedcodec.shared.errors import FedcodecError

RULE_KEYS = {"match", "profile", "attributes", "min_slices", "max_slices"}
REPLACED_VRS = {"PN", "DA", "DT", "TM", "UI"}
"""Value representations fedcodec's de-identification replaces even when the table does not list
the attribute (names, dates, times, instance UIDs)."""


@dataclass(frozen=True)
class SeriesFacts:
    """What a rule may look at in one series.

    ``header`` is any keyword lookup with ``.get`` (a pydicom ``Dataset``, or a dict in tests).
    """

    description: str = ""
    slices: int | None = None
    header: Mapping[str, Any] | None = None

    @classmethod
    def of_series(cls, series: Any) -> SeriesFacts:
        """Facts of a :class:`fedcodec.shared.dicom.Series` (its first header)."""
        header = series.datasets[0] if series.datasets else None
        return cls(series.description or "", int(series.shape[0]), header)

    def values(self, keyword: str) -> tuple[str, ...]:
        """The attribute's non-empty values as text (one per value of a multi-valued one)."""
        value = None if self.header is None else self.header.get(keyword)
        if value is None:
            return ()
        single = isinstance(value, str | bytes) or not isinstance(value, Sequence)
        items = [value] if single else value
        return tuple(text for item in items if (text := str(item).strip()))


@dataclass(frozen=True)
class ProfileRule:
    """Series matching every condition given get ``profile``.

    ``pattern``: Series Description (``re.search``, case-insensitive), None for none.
    ``attributes``: (DICOM keyword, pattern) pairs; some value of the attribute must match.
    ``min_slices`` / ``max_slices``: bounds on the series' slice count.
    """

    pattern: str | None
    profile: str
    attributes: tuple[tuple[str, str], ...] = ()
    min_slices: int | None = None
    max_slices: int | None = None

    def matches(self, series: SeriesFacts | str) -> bool:
        facts = SeriesFacts(description=series) if isinstance(series, str) else series
        if self.pattern is not None and not _search(self.pattern, facts.description or ""):
            return False
        for keyword, pattern in self.attributes:
            if not any(_search(pattern, value) for value in facts.values(keyword)):
                return False
        if self.min_slices is not None or self.max_slices is not None:
            if facts.slices is None:
                return False
            if self.min_slices is not None and facts.slices < self.min_slices:
                return False
            if self.max_slices is not None and facts.slices > self.max_slices:
                return False
        return True


def _search(pattern: str, text: str) -> bool:
    return re.search(pattern, text, re.IGNORECASE) is not None


def rule_from_mapping(index: int, item: Any, source: str) -> ProfileRule:
    """One ``[[rule]]`` table of a site's rules file; one-line errors naming it."""
    where = f"{source}: rule {index + 1}"
    if not isinstance(item, dict) or "profile" not in item or not set(item) <= RULE_KEYS:
        raise FedcodecError(
            f"{where} must have 'profile' and conditions among 'match', 'attributes', "
            "'min_slices', 'max_slices'"
        )
    if not set(item) - {"profile"}:
        raise FedcodecError(f"{where} has no condition (match, attributes, min/max_slices)")
    pattern, profile = item.get("match"), item["profile"]
    if (pattern is not None and not isinstance(pattern, str)) or not isinstance(profile, str):
        raise FedcodecError(f"{where}: 'match' and 'profile' must be strings")
    raw_attributes = item.get("attributes", {})
    if not isinstance(raw_attributes, dict) or not all(
        isinstance(v, str) for v in raw_attributes.values()
    ):
        raise FedcodecError(f"{where}: 'attributes' must be a table of KEYWORD = \"pattern\"")
    for checked in [pattern] + list(raw_attributes.values()):
        _check_pattern(checked, where)
    attributes = tuple((_kept_keyword(k, where), v) for k, v in raw_attributes.items())
    bounds = [item.get(key) for key in ("min_slices", "max_slices")]
    for value in bounds:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise FedcodecError(f"{where}: min_slices / max_slices must be whole numbers >= 1")
    if None not in bounds and bounds[0] > bounds[1]:
        raise FedcodecError(f"{where}: min_slices is larger than max_slices")
    return ProfileRule(pattern, profile, attributes, *bounds)


def _check_pattern(pattern: str | None, where: str) -> None:
    if pattern is None:
        return
    try:
        re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise FedcodecError(f"{where}: bad regular expression {pattern!r}: {exc}") from None


def _kept_keyword(keyword: Any, where: str) -> str:
    """``keyword`` if it names a DICOM attribute that de-identification keeps."""
    tag = tag_for_keyword(keyword) if isinstance(keyword, str) else None
    if tag is None:
        raise FedcodecError(f"{where}: {keyword!r} is not a DICOM attribute keyword")
    if tag in DEID_TABLE or dictionary_VR(tag) in REPLACED_VRS:
        raise FedcodecError(
            f"{where}: attribute {keyword} is removed or replaced by de-identification, so "
            "auto would not see it on de-identified data; use 'match' for the Series "
            "Description, or an attribute the Basic Profile keeps (ImageType, Modality, ...)"
        )
    return keyword
