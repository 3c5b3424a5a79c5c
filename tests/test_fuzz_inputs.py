"""No traceback, no silent bad output, on 600 seeded mutations of what users hand fedcodec.

The campaign (``fedcodec.client.fuzzing``) mutates containers (random damage, and crafted damage
with every CRC recomputed) into ``decompress``, ``inspect`` and ``inspect --verify``, and DICOM
files into ``compress`` and ``deid``, through the CLI entry function in this process. Each run
must end in a one-line error with a non-zero exit and nothing written, or in a correct output.
The named cases below pin the checks the audit found missing, one by one. 600 cases reach every
mutation kind (about 35 each); the 20,000-case campaign is ``experiments/fuzz_inputs.py`` (an
entry of ``experiments/run_all.py``, its table in docs/guide-security.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedcodec.client import compression
from fedcodec.client.cli import main
from fedcodec.client.fuzzing.campaign import BAD, TARGETS, Campaign
from fedcodec.client.fuzzing.mutations import ContainerParts
from fedcodec.client.fuzzing.seeds import write_seed_containers, write_seed_study

FUZZ_SEED = 20261206
FUZZ_CASES = 600
MUTATION_KINDS = {
    *(f"random-{k}" for k in ("append", "bitflip", "byte", "delete", "insert", "repeat",
                               "truncate")),
    *(f"crafted-dicom-{k}" for k in ("length", "tag", "value", "vr")),
    *(f"crafted-json-{k}" for k in ("bytes", "drop-key", "value")),
    *(f"crafted-stream-{k}" for k in ("bytes-pixels", "cut-pixels", "drop", "swap")),
}


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("fuzz-seeds")
    write_seed_study(base / "study")
    return write_seed_containers(base / "study", base / "fcz")


def _one_error_line(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code not in (0, 70), err
    assert len(err) == 1 and err[0].startswith("fedcodec: error: "), err
    return err[0]


def test_seeded_mutations_give_no_traceback_and_no_silent_wrong_output(
    tmp_path: Path,
) -> None:
    campaign = Campaign(tmp_path, seed=FUZZ_SEED)
    result = campaign.run(FUZZ_CASES)
    table = result.table()
    print(f"\nfuzz {FUZZ_CASES} cases, seed {FUZZ_SEED}, {result.seconds:.1f} s")
    for target, row in table.items():
        print(f"  {target:15} " + "  ".join(f"{k} {v}" for k, v in row.items() if v))
    failures = [f"#{c.index} {c.target} {c.kind} {c.seed_name}: {c.outcome}: {c.detail}"
                for c in result.failures]
    assert not failures, "\n".join(failures[:20])
    assert result.cases == FUZZ_CASES == sum(sum(row.values()) for row in table.values())
    assert all(table[t][bad] == 0 for t in TARGETS for bad in BAD)
    for target in TARGETS:  # every target was exercised and refused some input
        assert table[target]["rejected"] > 0, target
    # the oracles did judge outputs: valid-but-changed DICOM is accepted and checked
    assert table["compress"]["accepted"] > 0 and table["deid"]["accepted"] > 0
    crafted = sum(n for (target, kind, _), n in result.kinds.items() if kind.startswith("crafted"))
    assert crafted >= FUZZ_CASES // 3
    assert {kind for (_, kind, _) in result.kinds} == MUTATION_KINDS  # every kind was tried


def test_crafted_stream_swap_with_recomputed_crcs_is_refused(
    seeds: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two pixel streams swapped, CRCs recomputed: it still decodes, to other pixels."""
    parts = ContainerParts.split(seeds["htj2k"].read_bytes())
    header = json.loads(parts.header)
    first = header["series"][0]["pixel_streams"]["first"]
    parts.streams[first], parts.streams[first + 1] = parts.streams[first + 1], parts.streams[first]
    fcz = tmp_path / "swapped.fcz"
    fcz.write_bytes(parts.pack())
    assert main(["inspect", str(fcz)]) == 0  # the framing is consistent: plain inspect can't know
    capsys.readouterr()
    line = _one_error_line(capsys, main(["decompress", str(fcz), "-o", str(tmp_path / "o")]))
    assert "series 0: the decoded pixels and their description differ from what was coded" in line
    assert not (tmp_path / "o").exists()
    line = _one_error_line(capsys, main(["inspect", "--verify", str(fcz)]))
    assert "differ from what was coded" in line


def test_crafted_header_edit_is_refused(
    seeds: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """bits_stored 12 -> 13 in the JSON header (CRC recomputed) would change every file written."""
    parts = ContainerParts.split(seeds["jpegls"].read_bytes())
    header = json.loads(parts.header)
    header["series"][0]["bits_stored"] = 13
    parts.header = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    fcz = tmp_path / "edited.fcz"
    fcz.write_bytes(parts.pack())
    line = _one_error_line(capsys, main(["decompress", str(fcz), "-o", str(tmp_path / "o")]))
    assert "differ from what was coded" in line and not (tmp_path / "o").exists()


def test_plain_inspect_reports_random_damage_in_a_stream(
    seeds: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray(seeds["zstd"].read_bytes())
    data[-40] ^= 0x10  # inside the last stream
    fcz = tmp_path / "damaged.fcz"
    fcz.write_bytes(bytes(data))
    line = _one_error_line(capsys, main(["inspect", str(fcz)]))
    assert line.endswith("checksum mismatch")
    assert main(["inspect", "--verify", str(seeds["zstd"])]) == 0
    out = capsys.readouterr().out
    assert "all checksums verified, every series decoded and checked" in out


def test_decompress_refuses_dicom_that_does_not_read_back(
    seeds: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A writer that produces a broken file: the re-read catches it, nothing is left behind."""
    real = compression.write_series

    def truncating(series, folder, **kwargs):
        files = real(series, folder, **kwargs)
        files[-1].write_bytes(files[-1].read_bytes()[:-64])
        return files

    monkeypatch.setattr(compression, "write_series", truncating)
    out = tmp_path / "out"
    line = _one_error_line(capsys, main(["decompress", str(seeds["jpegls"]), "-o", str(out)]))
    assert "series 0: the DICOM written does not read back" in line
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_decompress_refuses_pixels_that_read_back_different(
    seeds: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = compression.write_series

    def off_by_one(series, folder, **kwargs):
        series.volume = series.volume.copy()
        written = real(series, folder, **kwargs)
        series.volume[0, 0, 0] += 1  # what was decoded is not what was written
        return written

    monkeypatch.setattr(compression, "write_series", off_by_one)
    line = _one_error_line(capsys, main(["decompress", str(seeds["jpegls"]), "-o",
                                         str(tmp_path / "o")]))
    assert "reads back with 1 stored values that differ from the decoded ones" in line


def test_containers_without_digests_still_decode(
    seeds: dict[str, Path], tmp_path: Path
) -> None:
    """Files written before the digests existed: CRCs only, as before."""
    parts = ContainerParts.split(seeds["jpegls"].read_bytes())
    header = json.loads(parts.header)
    for entry in header["series"]:
        del entry["pixels_sha256"], entry["dicom_headers"]["sha256"]
    parts.header = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    fcz = tmp_path / "old.fcz"
    fcz.write_bytes(parts.pack())
    assert b"sha256" not in parts.header
    files = compression.decompress_study(fcz, tmp_path / "out")
    assert len(files) == 5


def test_an_unforeseen_exception_is_one_line_and_exit_70(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(*args, **kwargs):
        raise KeyError("simulated bug")

    monkeypatch.setattr(compression, "inspect_container", broken)
    assert main(["inspect", str(tmp_path / "x.fcz")]) == 70
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fedcodec: internal error: KeyError")
    assert "--debug" in err[0]


def test_seed_study_round_trips(seeds: dict[str, Path], tmp_path: Path) -> None:
    """The seeds themselves are valid: every codec decompresses them within its promise."""
    for spec, fcz in seeds.items():
        files = compression.decompress_study(fcz, tmp_path / spec.replace(":", "_"))
        assert len(files) == 5, spec
