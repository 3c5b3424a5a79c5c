"""The shipped PS3.15 table is exactly what the generator makes from the source JSON."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from conftest import require_shared_data
from fedcodec.shared.deid import profile_table
from fedcodec.shared.deid.generate_profile_table import main, render_table
from fedcodec.shared.deid.iod_requirements import resolve_action

SHIPPED = Path(profile_table.__file__)


def _source() -> Path:
    return require_shared_data("dicom-standard", "confidentiality_profile_attributes.json")


def test_shipped_table_is_the_generated_one() -> None:
    assert render_table(_source()) == SHIPPED.read_text()


def test_generator_writes_the_same_file(tmp_path: Path) -> None:
    out = tmp_path / "table.py"
    assert main([str(_source()), "-o", str(out)]) == 0
    assert out.read_bytes() == SHIPPED.read_bytes()


def test_every_source_row_is_in_the_table_with_its_action() -> None:
    entries = json.loads(_source().read_text())
    shipped = Counter(action for action, _, _ in profile_table.ATTRIBUTES.values())
    shipped.update(action for _, _, action, _, _ in profile_table.PATTERNS)
    shipped[profile_table.PRIVATE[0]] += 1
    assert shipped == Counter(entry["basicProfile"] for entry in entries)
    for entry in entries:
        tag = entry["tag"]
        if "X" in tag or "G" in tag:
            continue
        number = int(tag[1:5] + tag[6:10], 16)
        action, _, options = profile_table.ATTRIBUTES[number]
        assert action == entry["basicProfile"], tag
        assert options == {k: v for k, v in entry.items() if k.endswith("Opt")}, tag


def test_known_rows_of_the_standard() -> None:
    rows = profile_table.ATTRIBUTES
    assert rows[0x00100010][:2] == ("Z", "Patient's Name")
    assert rows[0x00100020][0] == "Z/D"
    assert rows[0x0020000D][0] == "U"
    assert rows[0x00080080][0] == "X/Z/D"
    assert rows[0x00081140][0] == "X/Z/U*"
    assert profile_table.PRIVATE[0] == "X"
    assert "2024b" in profile_table.EDITION and "7f4749d" in profile_table.SOURCE


def test_every_action_in_the_table_resolves_to_a_concrete_one() -> None:
    actions = {action for action, _, _ in profile_table.ATTRIBUTES.values()}
    for action in actions:
        for required in (None, 1, 2):
            assert resolve_action(action, required) in {"X", "Z", "D", "U", "K"}
    assert resolve_action("X/Z/D", None) == "X"
    assert resolve_action("X/Z/D", 2) == "Z"
    assert resolve_action("X/Z/D", 1) == "D"
    assert resolve_action("Z/D", 1) == "D"
    assert resolve_action("X/D", 2) == "D"
    assert resolve_action("X/Z/U*", 1) == "U"
