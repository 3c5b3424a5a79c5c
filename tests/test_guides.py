"""The role guides in docs/ are executable: every command they show runs here, in order.

Each guide runs in its own empty folder with the real ``fedcodec`` / ``fedcodec-server``
console scripts (see ``guide_runner.py`` for the rules: exit statuses, services started with
``&`` and always stopped, shown output lines checked). The inputs a guide asks the reader for
(a DICOM study, free ports) are built here from MRI that ships with the dependencies, or taken
from ``../shared/data`` where a guide needs real labelled data.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO, require_shared_data
from guide_runner import (
    code_blocks_outside_console,
    free_port,
    parse_guide,
    run_guide,
    undefined_variables,
)

from fedcodec.client.demo.embedded_sites import embedded_stack, write_stack_as_dicom
from fedcodec.client.demo.example_study import ANISO_VOX, S0_10SLICES, write_example_study

DOCS = REPO / "docs"
HOSPITAL = DOCS / "guide-hospital-site.md"
RESEARCHER = DOCS / "guide-researcher.md"
SECURITY = DOCS / "guide-security.md"
GUIDES = (HOSPITAL, RESEARCHER, SECURITY)


def write_study(folder: Path, *, burned_in: bool = False) -> Path:
    """A two-series MR study with a patient identity in its headers (what a PACS exports)."""
    return write_example_study(folder, burned_in=burned_in)


def write_site_folder(folder: Path, source: tuple[str, str], patient: str) -> Path:
    write_stack_as_dicom(embedded_stack(*source), folder, patient_id=patient,
                         description="training series", max_slices=4)
    return folder


def documented_variables(guide: Path) -> set[str]:
    """Variables named in the guide's "Before you start" table (rows starting with `$NAME`)."""
    text = guide.read_text()
    section = text.split("## Before you start", 1)[1].split("\n## ", 1)[0]
    return {name for row in section.splitlines() if row.startswith("| `$")
            for name in re.findall(r"`\$([A-Z_][A-Z0-9_]*)`", row.split("|")[1])}


def hospital_inputs(tmp: Path) -> dict[str, str]:
    inputs = {"STUDY": str(write_study(tmp / "inputs" / "study")),
              "SITE_DATA": str(write_site_folder(tmp / "inputs" / "site-a", S0_10SLICES,
                                                 "hospital-a-patient")),
              "PEER_DATA": str(write_site_folder(tmp / "inputs" / "site-b", ANISO_VOX,
                                                 "hospital-b-patient"))}
    for name in ("STORE_PORT", "FED_PORT", "NODE_PORT", "PEER_NODE_PORT"):
        inputs[name] = str(free_port())
    return inputs


def security_inputs(tmp: Path) -> dict[str, str]:
    return {"STUDY": str(write_study(tmp / "inputs" / "study")),
            "MARKED_STUDY": str(write_study(tmp / "inputs" / "marked", burned_in=True)),
            "STORE_PORT": str(free_port())}


def researcher_inputs(tmp: Path) -> dict[str, str]:
    dicom = require_shared_data("dicom", "ge")
    tumour = require_shared_data("tumor")
    return {"DICOM": str(dicom), "TUMOUR": str(tumour),
            "ANALYSIS_PORT": str(free_port()), "MLFLOW_PORT": str(free_port())}


INPUT_NAMES = {
    HOSPITAL: {"STUDY", "SITE_DATA", "PEER_DATA", "STORE_PORT", "FED_PORT", "NODE_PORT",
               "PEER_NODE_PORT"},
    SECURITY: {"STUDY", "MARKED_STUDY", "STORE_PORT"},
    RESEARCHER: {"DICOM", "TUMOUR", "ANALYSIS_PORT", "MLFLOW_PORT"},
}


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.stem)
def test_guide_is_well_formed(guide):
    """Commands only in ```console blocks, every variable defined before use, inputs listed."""
    commands = parse_guide(guide)
    assert len(commands) >= 10
    assert code_blocks_outside_console(guide) == []
    assert undefined_variables(commands, INPUT_NAMES[guide]) == []
    assert documented_variables(guide) == INPUT_NAMES[guide]
    assert all(c.expected_exit in (0, 1, 2) for c in commands)


def test_docs_index_links_every_doc():
    index = (DOCS / "README.md").read_text()
    linked = set(re.findall(r"\]\(([^)#]+\.md)", index))
    present = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    assert present <= linked, f"not in docs/README.md: {sorted(present - linked)}"
    assert all((DOCS / name).exists() for name in linked), sorted(linked)


def test_guide_links_resolve():
    for guide in GUIDES:
        for target in re.findall(r"\]\(([^)#:]+\.md)", guide.read_text()):
            assert (DOCS / target).exists(), f"{guide.name} links to missing {target}"


def test_parser_reads_continuations_exit_codes_and_services(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n```console\n$ echo a \\\n    b\na b\n$ false  # exits 1\n"
                    "$ fedcodec-server storage serve --port $P &\n```\n```sh\nnot run\n```\n")
    first, second, third = parse_guide(page)
    assert (first.text, first.shown_output, first.expected_exit) == ("echo a b", ["a b"], 0)
    assert (second.expected_exit, second.background) == (1, False)
    assert third.background and third.text == "fedcodec-server storage serve --port $P"


def test_runner_rejects_output_a_command_does_not_print(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```console\n$ export X=1\n$ echo value $X\nvalue ...\n$ echo other\n"
                    "something else\n```\n")
    with pytest.raises(AssertionError, match="did not print"):
        run_guide(page, tmp_path / "work", {})
    transcript = (tmp_path / "work" / "logs" / "transcript.txt").read_text()
    assert "$ echo value $X   [exit 0" in transcript and "value 1" in transcript


@pytest.mark.slow(330)
@pytest.mark.timeout(1200)
def test_hospital_site_guide(tmp_path):
    run_guide(HOSPITAL, tmp_path / "work", hospital_inputs(tmp_path))


@pytest.mark.slow(120)
@pytest.mark.timeout(600)
def test_security_guide(tmp_path):
    run_guide(SECURITY, tmp_path / "work", security_inputs(tmp_path))


@pytest.mark.shared_data
@pytest.mark.slow(150)
@pytest.mark.timeout(900)
def test_researcher_guide(tmp_path):
    run_guide(RESEARCHER, tmp_path / "work", researcher_inputs(tmp_path))
