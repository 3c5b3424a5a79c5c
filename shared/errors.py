"""One exception type for every failure a user can cause.

Bad input (a missing path, a corrupt DICOM, a truncated container, a wrong key, an unknown site)
raises :class:`FedcodecError` with a one-line message that says what is wrong and with what. The
CLIs print that line and exit non-zero; anything else is a bug and keeps its traceback under
``--debug``.
"""


class FedcodecError(Exception):
    """A user-facing error: its ``str`` is the whole one-line message."""

    exit_code: int = 2


class CorruptDataError(FedcodecError):
    """A bitstream, container or object that does not parse or does not verify."""


class UnknownNameError(FedcodecError):
    """A codec, site, key or object that is not known."""


class DataWarning(UserWarning):
    """Something about the user's data they must hear even with ``--quiet`` (which silences
    library warnings): printed once as ``fedcodec: warning: ...``."""
