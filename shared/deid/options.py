"""What a site may choose when de-identifying; the defaults are the strict Basic Profile."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeidOptions:
    """Switches on top of the PS3.15 Basic Application Level Confidentiality Profile.

    The defaults give the Basic Profile plus fedcodec's stricter handling of attributes the
    2024b table does not list (see ``docs/deidentification.md``).
    """

    retain_safe_private: bool = False
    """PS3.15 Retain Safe Private Option (113111): keep a small, explicit list of numeric
    acquisition-physics private attributes (mosaic tile count, b-values, gradient directions,
    Philips scale slope), each checked to hold only finite numbers. Everything else private goes."""
    pseudonymize_patient_id: bool = False
    """Replace a non-empty Patient ID with a keyed pseudonym (``FCP-...``, a D value) instead of
    emptying it (Z), so studies of one patient stay linkable at the site that holds the key."""
    strict_unlisted: bool = True
    """Also replace attributes the table does not list but that identify by their type: person
    names (PN) and dates/times (DA, DT, TM) get dummies, instance UIDs are replaced, and public
    tags missing from the data dictionary are removed."""
    allow_burned_in_annotation: bool = False
    """Pixel data are never changed. By default an image marked Burned In Annotation = YES is
    refused, since its pixels may show identifying text; set this to pass it through."""
