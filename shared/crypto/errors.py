"""Failures of encrypted objects and keyrings, each a one-line user-facing message.

The classes let callers (and tests) tell apart the things a user must act on differently: the
wrong keyring (``WrongKeyError``: use another key, nothing is damaged), a damaged or manipulated
object (``TamperedObjectError``), an incomplete upload or download (``TruncatedObjectError``),
something that is not an encrypted object at all (``NotAnObjectError``), and a keyring that is
unsafe or unreadable (``KeyringError``).
"""

from __future__ import annotations

from fedcodec.shared.errors import CorruptDataError, FedcodecError, UnknownNameError


class WrongKeyError(FedcodecError):
    """The keyring cannot open this object: its key does not match the object's key commitment."""


class UnknownKeyError(WrongKeyError, UnknownNameError):
    """The keyring holds none of the keys the object is wrapped for (unknown KEK id / recipient)."""


class NotAnObjectError(CorruptDataError):
    """The bytes do not start like an encrypted fedcodec object."""


class TamperedObjectError(CorruptDataError):
    """An authenticity or integrity check failed: the object was altered or is malformed."""


class TruncatedObjectError(CorruptDataError):
    """The object ends before its final frame (or inside its header)."""


class KeyringError(FedcodecError):
    """A keyring directory that is missing, malformed, or not private enough to trust."""


class PrivateKeyFileError(FedcodecError):
    """A private key file (TLS, CA, SuperNode) that is missing or readable by group/others."""
