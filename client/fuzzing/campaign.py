"""Run a seeded fuzz campaign through the CLI entry function and count outcomes per target.

Each case ``i`` draws from ``random.Random(f"{seed}:{i}")``, so any case is reproducible on its
own (``fuzz_inputs.py --seed S --only-case i``). Targets are run in this process through
:func:`fedcodec.client.cli.main`, exactly the code path of the console script, with stdout and
stderr captured: thousands of cases take seconds, not the minutes thousands of subprocesses would.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import shutil
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

from fedcodec.client.fuzzing.mutations import (
    Mutation,
    crafted_container_mutation,
    crafted_dicom_mutation,
    random_mutation,
)
from fedcodec.client.fuzzing.oracles import (
    DicomImage,
    check_compressed,
    check_deidentified,
    compare_images,
    decompressed_images,
)
from fedcodec.client.fuzzing.seeds import write_seed_containers, write_seed_study

TARGETS = ("decompress", "inspect", "inspect-verify", "compress", "deid")
TARGET_CYCLE = ("decompress", "inspect", "compress", "inspect-verify", "deid", "inspect",
                "decompress", "inspect")
"""Case ``i`` goes to ``TARGET_CYCLE[i % 8]``: per 8 cases 2 decompress, 3 inspect, 1 each of
``inspect --verify``, ``compress`` and ``deid`` (plain ``inspect`` is the cheapest to run and
the one the audit found most lenient)."""
GOOD = ("rejected", "accepted")
"""The only acceptable outcomes: a one-line error with a non-zero exit, or a correct output."""
BAD = ("traceback", "internal-error", "messy-error", "partial-output", "wrong-output")


@dataclass
class Case:
    """One run: which target, which mutation, and how it ended."""

    index: int
    target: str
    seed_name: str
    kind: str
    outcome: str
    detail: str = ""


@dataclass
class CampaignResult:
    """Counts per target and outcome, per mutation kind, and the failing cases in full."""

    seed: int
    cases: int = 0
    seconds: float = 0.0
    counts: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    failures: list[Case] = field(default_factory=list)
    rejection_messages: list[str] = field(default_factory=list)

    def add(self, case: Case) -> None:
        self.cases += 1
        self.counts[(case.target, case.outcome)] += 1
        self.kinds[(case.target, case.kind, case.outcome)] += 1
        if case.outcome in BAD:
            self.failures.append(case)
        elif case.outcome == "rejected":
            self.rejection_messages.append(case.detail)

    def table(self) -> dict[str, dict[str, int]]:
        """``{target: {outcome: count}}`` with every outcome present."""
        return {
            target: {outcome: self.counts[(target, outcome)] for outcome in (*GOOD, *BAD)}
            for target in TARGETS
        }


@dataclass
class _Run:
    code: int | None
    out: str
    err: str
    escaped: str = ""


_PARSER: list[argparse.ArgumentParser] = []


def _run_cli(argv: list[str]) -> _Run:
    from fedcodec.client.cli import client_parser, main

    if not _PARSER:
        _PARSER.append(client_parser())
    out, err = io.StringIO(), io.StringIO()
    code: int | None
    escaped = ""
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv, parser=_PARSER[0])
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:  # noqa: BLE001 - an escaping exception is what we look for
            code = None
            frames = traceback.extract_tb(exc.__traceback__)
            where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
            escaped = f"{type(exc).__name__} at {where}: {str(exc)[:160]}"
    return _Run(code, out.getvalue(), err.getvalue(), escaped)


def _classify_failure(run: _Run) -> tuple[str, str] | None:
    """Outcome for a run that did not exit 0 (``None`` when it exited 0)."""
    if run.code is None:
        return "traceback", run.escaped
    if run.code == 0:
        return None
    lines = run.err.strip().splitlines()
    if "Traceback" in run.err:
        return "traceback", lines[-1] if lines else ""
    if len(lines) != 1 or not lines[0].startswith("fedcodec: "):
        return "messy-error", " | ".join(lines[:3])[:200]
    if "internal error" in lines[0]:
        return "internal-error", lines[0]
    return "rejected", lines[0]


class Campaign:
    """Seeds built once in a scratch folder, then any number of cases against them."""

    def __init__(self, scratch: Path, *, seed: int) -> None:
        self.scratch = scratch
        self.seed = seed
        self.study = scratch / "seed-study"
        self.study_files = write_seed_study(self.study)
        self.containers = {
            spec: path.read_bytes()
            for spec, path in write_seed_containers(self.study, scratch / "seed-fcz").items()
        }
        self.expected: dict[str, list[DicomImage]] = {}
        for spec, data in self.containers.items():
            folder = scratch / f"expected-{len(self.expected)}"
            (scratch / "probe.fcz").write_bytes(data)
            run = _run_cli(["decompress", str(scratch / "probe.fcz"), "-o", str(folder),
                            "--quiet"])
            if run.code != 0:
                raise RuntimeError(f"seed container {spec} does not decompress: {run.err}")
            self.expected[spec] = decompressed_images(folder)
        self.keyring = scratch / "keyring"
        run = _run_cli(["keys", "init", "--site", "fuzz", "--keyring", str(self.keyring)])
        if run.code != 0:
            raise RuntimeError(f"cannot create the fuzz keyring: {run.err}")
        self.dicom_seeds = {p.name: p.read_bytes() for p in self.study_files}
        self._work = scratch / "work"

    def run(self, cases: int, *, start: int = 0,
            progress: Callable[[int], None] | None = None) -> CampaignResult:
        """Cases ``start .. start+cases-1``: targets in rotation, mutations from the case seed."""
        result = CampaignResult(self.seed)
        began = time.perf_counter()
        for index in range(start, start + cases):
            result.add(self.case(index))
            if progress is not None:
                progress(index)
        result.seconds = time.perf_counter() - began
        return result

    def case(self, index: int) -> Case:
        """Run case ``index`` (deterministic in ``seed`` and ``index``).

        ``os.fsync`` is a no-op meanwhile: every output lands in a scratch folder that is
        deleted at once, durability is not what is tested, and syncing dominated the run time.
        """
        with mock.patch("os.fsync", lambda fd: None):
            return self._case(index)

    def _case(self, index: int) -> Case:
        rng = random.Random(f"{self.seed}:{index}")
        target = TARGET_CYCLE[index % len(TARGET_CYCLE)]
        shutil.rmtree(self._work, ignore_errors=True)
        self._work.mkdir(parents=True)
        if target in ("compress", "deid"):
            return self._dicom_case(index, target, rng)
        return self._container_case(index, target, rng)

    def _container_case(self, index: int, target: str, rng: random.Random) -> Case:
        spec = rng.choice(sorted(self.containers))
        data = self.containers[spec]
        crafted = rng.random() < (0.6 if target != "inspect" else 0.3)
        mutation = crafted_container_mutation(data, rng) if crafted else random_mutation(data, rng)
        fcz = self._work / "input.fcz"
        fcz.write_bytes(mutation.data)
        out = self._work / "out"
        argv = {
            "decompress": ["decompress", str(fcz), "-o", str(out), "--quiet"],
            "inspect": ["inspect", str(fcz)],
            "inspect-verify": ["inspect", "--verify", str(fcz)],
        }[target]
        run = _run_cli(argv)
        case = Case(index, target, spec, mutation.kind, "accepted")
        failed = _classify_failure(run)
        if failed is not None:
            case.outcome, case.detail = failed
            if target == "decompress" and out.exists():
                case.outcome, case.detail = "partial-output", f"{out} left behind ({case.detail})"
            return case
        case.detail = self._judge_container(target, spec, mutation, out, fcz)
        if case.detail:
            case.outcome = "wrong-output"
        return case

    def _judge_container(self, target: str, spec: str, mutation: Mutation, out: Path,
                         fcz: Path) -> str:
        if target == "decompress":
            return compare_images(self.expected[spec], out) or ""
        if not mutation.crafted:  # every byte is under a CRC: random damage must be reported
            return f"{target} exit 0 on a damaged file ({mutation.kind})"
        if target == "inspect-verify":  # verified fine: then it must decompress to the original
            run = _run_cli(["decompress", str(fcz), "-o", str(out), "--quiet"])
            if run.code != 0:
                return f"verify passed but decompress failed: {run.err.strip()[:160]}"
            return compare_images(self.expected[spec], out) or ""
        return ""

    def _dicom_case(self, index: int, target: str, rng: random.Random) -> Case:
        name = rng.choice(sorted(self.dicom_seeds))
        data = self.dicom_seeds[name]
        crafted = rng.random() < 0.5
        mutation = crafted_dicom_mutation(data, rng) if crafted else random_mutation(data, rng)
        folder = self._work / "in"
        folder.mkdir()
        series = name.split("_")[0]
        for other, content in self.dicom_seeds.items():  # the rest of its series, intact
            if other.startswith(series) and other != name:
                (folder / other).write_bytes(content)
        (folder / name).write_bytes(mutation.data)
        out = self._work / ("study.fcz" if target == "compress" else "out")
        argv = (["compress", str(folder), "-o", str(out), "--codec", "jpegls", "--quiet"]
                if target == "compress" else
                ["deid", str(folder), "-o", str(out), "--keyring", str(self.keyring), "--quiet"])
        run = _run_cli(argv)
        case = Case(index, target, name, mutation.kind, "accepted")
        failed = _classify_failure(run)
        if failed is not None:
            case.outcome, case.detail = failed
            if out.exists():
                case.outcome, case.detail = "partial-output", f"{out} left behind ({case.detail})"
            return case
        if target == "compress":
            detail = check_compressed(out, self._work / "check")
        else:
            detail = check_deidentified(out)
        if detail:
            case.outcome, case.detail = "wrong-output", detail
        return case


def run_campaign(cases: int, *, seed: int, scratch: Path | None = None,
                 start: int = 0) -> CampaignResult:
    """Build the seeds and run ``cases`` cases (in a temporary folder unless ``scratch``)."""
    with contextlib.ExitStack() as stack:
        if scratch is None:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fuzz-")))
        campaign = Campaign(scratch, seed=seed)
        return campaign.run(cases, start=start)
