"""Atomic replacement: the target holds the old bytes or all the new ones, never a part."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fedcodec.shared.atomic_files import PRIVATE_MODE, atomic_output, write_atomic


def test_write_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.bin"
    write_atomic(target, b"old")
    write_atomic(target, [b"n", b"ew"])
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.bin"]


def test_failure_keeps_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as handle:
            handle.write(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_modes(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    write_atomic(secret, b"k", mode=PRIVATE_MODE)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    umask = os.umask(0o022)
    try:
        plain = tmp_path / "plain"
        write_atomic(plain, b"p")
        assert stat.S_IMODE(plain.stat().st_mode) == 0o644
    finally:
        os.umask(umask)
