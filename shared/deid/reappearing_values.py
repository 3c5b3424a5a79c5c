"""Identifying values the profile removed, found again inside text the profile keeps.

PS3.15 acts attribute by attribute: Patient ID is emptied, but a technologist who typed the ID
into a kept free-text attribute (a sequence name, a body part, a kept description, a model name)
leaves it there. So while a dataset is cleaned, the *values* of the identifying attributes it
removes or replaces are collected (every person name and its parts, patient IDs, accession and
study numbers, institution, addresses, phone numbers, birth date, and the original instance
UIDs); afterwards every kept text element is searched for them, case-insensitively and as whole
words, and each occurrence is overwritten with ``X`` of the same length (so the value still fits
its VR). The report counts each replacement as action ``R`` per attribute, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fedcodec.shared.deid.dummy_values import DUMMY_TEXT, dummy_value
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue

IDENTIFYING_TAGS = frozenset(
    {
        0x00100020,  # Patient ID
        0x00100021,  # Issuer of Patient ID
        0x00101000,  # Other Patient IDs (retired)
        0x00100030,  # Patient's Birth Date
        0x00101040,  # Patient's Address
        0x00102154,  # Patient's Telephone Numbers
        0x00101090,  # Medical Record Locator
        0x00080050,  # Accession Number
        0x00200010,  # Study ID
        0x00080080,  # Institution Name
        0x00080081,  # Institution Address
        0x00081040,  # Institutional Department Name
        0x00081010,  # Station Name
        0x00181000,  # Device Serial Number
        0x00380010,  # Admission ID
        0x00120040,  # Clinical Trial Subject ID
        0x00120042,  # Clinical Trial Subject Reading ID
        0x00401001,  # Requested Procedure ID
    }
)
"""Besides every PN (person name) and every replaced instance UID."""
ID_TAGS = frozenset(
    {0x00100020, 0x00101000, 0x00101090, 0x00080050, 0x00200010, 0x00380010, 0x00120040,
     0x00120042, 0x00401001}
)
"""Identifiers proper: also searched word by word (each word with a digit)."""
SEARCHED_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})
NOT_SEARCHED = frozenset({0x00120062, 0x00120063, 0x00080070})
"""Patient Identity Removed and De-identification Method (written by fedcodec itself), and
Manufacturer (a vendor name, which test and research sites also use as Institution Name)."""
MIN_LENGTH = 4
MIN_NAME_PART = 3
MIN_DIGITS_ONLY = 6
"""Shorter values (a sex, an initial, a 3-digit number) would match unrelated text."""
REASON = "reappearing-identifier"


_PLACEHOLDERS = frozenset(
    {DUMMY_TEXT, *(str(dummy_value(vr)) for vr in ("AE", "CS", "LO", "PN", "SH", "DA"))}
)
"""fedcodec's own dummies: a second pass must not treat them as identifying values."""


def _texts(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, MultiValue | list | tuple):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def _worth_searching(text: str, minimum: int) -> bool:
    text = text.strip()
    if len(text) < minimum or not any(c.isalnum() for c in text) or text in _PLACEHOLDERS:
        return False
    return not (text.isdigit() and len(text) < MIN_DIGITS_ONLY)


def identifying_values(element: DataElement, vr: str) -> set[str]:
    """The values of ``element`` (about to be removed or replaced) worth searching for, from
    it and, for a sequence, from everything inside it."""
    found: set[str] = set()
    if vr == "SQ":
        for item in element.value or []:
            for inner in item.iterall():
                found |= identifying_values(inner, str(inner.VR))
        return found
    tag = int(element.tag)
    if vr == "PN":
        for text in _texts(element.value):
            for whole in (text.strip(), text.replace("^", " ").strip()):
                if _worth_searching(whole, MIN_LENGTH):
                    found.add(whole)
            found |= {
                part for part in re.split(r"[\^=\s,]+", text)
                if _worth_searching(part, MIN_NAME_PART) and any(c.isalpha() for c in part)
            }
    elif tag in IDENTIFYING_TAGS or vr == "UI":
        found |= {t.strip() for t in _texts(element.value) if _worth_searching(t, MIN_LENGTH)}
        if tag in ID_TAGS:  # an ID typed with extra words: each word that looks like an ID
            found |= {
                word for text in _texts(element.value) for word in text.split()
                if _worth_searching(word, MIN_LENGTH) and any(c.isdigit() for c in word)
            }
    return found


def _pattern(values: Iterable[str]) -> re.Pattern[str] | None:
    ordered = sorted(set(values), key=lambda v: (-len(v), v))
    if not ordered:
        return None
    alternatives = "|".join(re.escape(v) for v in ordered)
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.IGNORECASE)


def scrub_kept_text(kept: Iterable[DataElement], values: set[str]) -> list[int]:
    """Overwrite every occurrence of ``values`` in the ``kept`` text elements (elements the
    profile kept unchanged, at any depth; never a dummy or pseudonym it wrote itself); return the
    tags of the elements changed (one entry per element)."""
    pattern = _pattern(values)
    if pattern is None:
        return []
    changed = []
    for element in kept:
        tag = int(element.tag)
        if str(element.VR) not in SEARCHED_VRS or tag in NOT_SEARCHED or element.value is None:
            continue
        texts = _texts(element.value)
        cleaned = [pattern.sub(lambda m: "X" * len(m.group(0)), text) for text in texts]
        if cleaned == texts:
            continue
        if isinstance(element.value, MultiValue | list | tuple):
            element.value = cleaned
        else:
            element.value = cleaned[0]
        changed.append(tag)
    return changed
