"""Cheap copies of headers for writing: share the elements, replace (never mutate) what changes.

Vendor headers are large (a Philips classic MR header has ~450 elements and nested sequences);
deep-copying one per output file made writing the shared tree take minutes. A shallow copy that
shares the element objects is safe as long as every change *replaces* an element
(:func:`replace_element`) and nested sequences are deep-copied before their items are edited
(:func:`own_element`).
"""

from __future__ import annotations

import copy
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag


def shallow_header_copy(source: Dataset) -> Dataset:
    """A new Dataset whose top-level element dict is new but whose elements are shared.

    Elements stay as read (raw ones are not parsed) and the copy keeps the source's original
    encoding, so pydicom writes unchanged elements byte for byte when the encoding is the same.
    """
    out = Dataset({element.tag: element for element in source.elements()})
    implicit, little = source.original_encoding
    if implicit is not None and little is not None:
        out.set_original_encoding(implicit, little, source.original_character_set)
    return out


def replace_element(ds: Dataset, keyword: str, value: Any, vr: str | None = None) -> None:
    """Put a fresh element for ``keyword`` in ``ds`` (the old one, maybe shared, is untouched)."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(f"unknown DICOM keyword {keyword!r}")
    ds[tag] = DataElement(Tag(tag), vr or dictionary_VR(tag), value)


def own_element(ds: Dataset, keyword: str) -> Any:
    """Replace ``ds.keyword`` by a deep copy of itself and return the copy's value (to edit)."""
    tag = tag_for_keyword(keyword)
    if tag is None or tag not in ds:
        return None
    ds[tag] = copy.deepcopy(ds[tag])
    return ds[tag].value
