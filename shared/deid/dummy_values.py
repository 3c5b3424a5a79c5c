"""Dummy values for action D: non-empty, valid for the VR, and carrying no information.

Fixed values (not random ones) keep de-identification deterministic and idempotent: running it
twice gives the same bytes. UIDs never get a dummy here; D on a UID uses the keyed UID mapping,
which is a valid dummy that also keeps references consistent.
"""

from __future__ import annotations

DUMMY_TEXT = "ANONYMIZED"
_BY_VR: dict[str, object] = {
    "AE": DUMMY_TEXT,
    "AS": "000Y",
    "AT": 0,
    "CS": DUMMY_TEXT,
    "DA": "19000101",
    "DS": "0",
    "DT": "19000101000000",
    "FL": 0.0,
    "FD": 0.0,
    "IS": "0",
    "LO": DUMMY_TEXT,
    "LT": DUMMY_TEXT,
    "OB": b"\x00\x00",
    "OD": bytes(8),
    "OF": bytes(4),
    "OL": bytes(4),
    "OV": bytes(8),
    "OW": b"\x00\x00",
    "PN": DUMMY_TEXT,
    "SH": DUMMY_TEXT,
    "SL": 0,
    "SS": 0,
    "ST": DUMMY_TEXT,
    "SV": 0,
    "TM": "000000",
    "UC": DUMMY_TEXT,
    "UL": 0,
    "UN": b"\x00\x00",
    "UR": DUMMY_TEXT,
    "US": 0,
    "UT": DUMMY_TEXT,
    "UV": 0,
}


def concrete_vr(vr: str) -> str:
    """``'US or SS'`` → ``'US'``: a dummy of either is the same zero."""
    return vr.split(" or ")[0].strip()


def dummy_value(vr: str) -> object:
    """The dummy for ``vr`` (not ``SQ`` or ``UI``, which the de-identifier handles itself)."""
    vr = concrete_vr(vr)
    if vr not in _BY_VR:
        raise ValueError(f"no dummy value for VR {vr}")
    return _BY_VR[vr]
