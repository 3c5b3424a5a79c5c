"""``-o`` is checked before any work: a bad path fails at once, ``--force`` replaces only files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.output_paths import check_output


def test_a_new_file_or_folder_in_a_writable_folder_passes(tmp_path: Path) -> None:
    check_output(tmp_path / "study.fcz", folder=False)
    check_output(tmp_path / "new" / "deeper" / "study.fcz", folder=False)
    check_output(tmp_path / "out", folder=True)
    assert sorted(os.listdir(tmp_path)) == []  # the probe file is gone


def test_an_existing_file_needs_force_and_then_is_replaced(tmp_path: Path) -> None:
    earlier = tmp_path / "study.fcz"
    earlier.write_bytes(b"old")
    with pytest.raises(FedcodecError, match="exists; use --force"):
        check_output(earlier, folder=False)
    check_output(earlier, folder=False, force=True)


@pytest.mark.parametrize("target", ["device", "folder", "link"])
def test_force_replaces_nothing_but_a_regular_file(tmp_path: Path, target: str) -> None:
    path = {"device": Path(os.devnull), "folder": tmp_path, "link": tmp_path / "link"}[target]
    if target == "link":
        path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FedcodecError, match="^refusing to replace .*--force replaces only"):
        check_output(path, folder=False, force=True)


def test_a_path_under_a_file_or_a_pseudo_file_system_is_refused(tmp_path: Path) -> None:
    (tmp_path / "afile").write_bytes(b"")
    for folder in (False, True):
        with pytest.raises(FedcodecError, match="^cannot write .*afile is not a folder$"):
            check_output(tmp_path / "afile" / "sub", folder=folder)
    with pytest.raises(FedcodecError, match="^cannot write /proc/x.fcz: "):
        check_output(Path("/proc/x.fcz"), folder=False)


def test_an_existing_output_folder_must_be_a_folder(tmp_path: Path) -> None:
    (tmp_path / "afile").write_bytes(b"")
    with pytest.raises(FedcodecError, match="exists and is not a folder"):
        check_output(tmp_path / "afile", folder=True)
    check_output(tmp_path, folder=True)  # emptiness is decompress's own check
