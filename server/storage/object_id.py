"""Object ids are file names on the server: a strict alphabet rules out path tricks."""

from __future__ import annotations

import re

from fedcodec.server.storage.errors import InvalidObject

#: Never starts with '.', so object files can't collide with the backend's ``.tmp-*`` files.
OBJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_object_id(object_id: str) -> str:
    """Return ``object_id`` if valid, else raise :class:`InvalidObject` with the rule."""
    if not OBJECT_ID.match(object_id):
        raise InvalidObject(
            f"invalid object id {object_id!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "not starting with '.', '_' or '-'"
        )
    return object_id
