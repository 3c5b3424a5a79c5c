"""A long fuzz campaign over everything fedcodec reads from a user; counts per target and outcome.

    nice -n 10 .venv/bin/python experiments/fuzz_inputs.py --mutations 20000 --seed 1 --out DIR
    .venv/bin/python experiments/fuzz_inputs.py --seed 1 --only-case 434 --out DIR   (one case)

Cases go to ``decompress``, ``inspect``, ``inspect --verify`` (containers: random damage, and
crafted damage with every CRC recomputed) and to ``compress`` and ``deid`` (DICOM files: random
damage, and crafted changes of a length, a VR, a tag or a value), in rotation (see
``fedcodec.client.fuzzing.campaign.TARGET_CYCLE``), all through the CLI entry function in this
process. ``tests/test_fuzz_inputs.py`` runs the first 600 cases of one seed in the suite.

Writes ``DIR/fuzz_inputs.json`` (counts per target x outcome, per mutation kind, every failing case
with its index to replay, the most common rejection messages) and ``DIR/fuzz_inputs.md`` (the
table for docs/guide-security.md). Exit 1 if any case failed (traceback, internal error, messy
error output, partial output, or a silent wrong output).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

from fedcodec.client.fuzzing.campaign import BAD, GOOD, TARGETS, Campaign, CampaignResult


def _table(result: CampaignResult) -> str:
    outcomes = (*GOOD, *BAD)
    rows = ["| target | cases | " + " | ".join(outcomes) + " |",
            "|---|---:|" + "---:|" * len(outcomes)]
    table = result.table()
    for target in TARGETS:
        row = table[target]
        rows.append(f"| {target} | {sum(row.values()):,} | "
                    + " | ".join(f"{row[o]:,}" for o in outcomes) + " |")
    total = {o: sum(table[t][o] for t in TARGETS) for o in outcomes}
    rows.append(f"| **all** | {result.cases:,} | "
                + " | ".join(f"{total[o]:,}" for o in outcomes) + " |")
    return "\n".join(rows)


def _kinds_table(result: CampaignResult) -> str:
    by_kind: Counter = Counter()
    rejected: Counter = Counter()
    for (_, kind, outcome), n in result.kinds.items():
        by_kind[kind] += n
        if outcome == "rejected":
            rejected[kind] += n
    rows = ["| mutation kind | cases | rejected | accepted (output checked) |",
            "|---|---:|---:|---:|"]
    for kind in sorted(by_kind):
        rows.append(f"| {kind} | {by_kind[kind]:,} | {rejected[kind]:,} | "
                    f"{by_kind[kind] - rejected[kind]:,} |")
    return "\n".join(rows)


def _message_shape(detail: str) -> str:
    """A rejection message with its numbers and paths blanked, to count kinds of message."""
    text = re.sub(r"/\S+", "PATH", detail.removeprefix("fedcodec: error: "))
    text = re.sub(r"\b[0-9a-f]{12,}\b", "HEX", text)
    return re.sub(r"\d+", "N", text)[:110]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutations", type=int, default=20000, help="number of cases")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=0, help="first case index")
    parser.add_argument("--only-case", type=int, help="run just this case (to replay a failure)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON and table")
    args = parser.parse_args(argv)
    if args.mutations < 1:
        parser.error("--mutations must be at least 1")
    warnings.simplefilter("ignore")  # pydicom warns on every odd value the mutations make
    logging.disable(logging.CRITICAL)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fuzz-inputs-") as scratch:
        campaign = Campaign(Path(scratch), seed=args.seed)
        if args.only_case is not None:
            case = campaign.case(args.only_case)
            print(json.dumps(vars(case), indent=1))
            return 0 if case.outcome in GOOD else 1
        began = time.perf_counter()
        last = [began]

        def progress(index: int) -> None:
            now = time.perf_counter()
            if now - last[0] > 30:
                done = index - args.start + 1
                print(f"  {done:,}/{args.mutations:,} cases, {now - began:.0f} s, "
                      f"{len(result_failures)} failing so far", file=sys.stderr, flush=True)
                last[0] = now

        result_failures: list = []
        result = campaign.run(args.mutations, start=args.start, progress=progress)
        result_failures.extend(result.failures)
    rejections: Counter = Counter(_message_shape(m) for m in result.rejection_messages)
    doc = {
        "seed": args.seed,
        "first_case": args.start,
        "cases": result.cases,
        "seconds": round(result.seconds, 1),
        "counts": result.table(),
        "kinds": [{"target": t, "kind": k, "outcome": o, "count": n}
                  for (t, k, o), n in sorted(result.kinds.items())],
        "failures": [vars(c) for c in result.failures],
        "command": " ".join(["experiments/fuzz_inputs.py", *(argv or sys.argv[1:])]),
    }
    doc["common_rejections"] = [{"message": m, "count": n} for m, n in rejections.most_common(25)]
    (args.out / "fuzz_inputs.json").write_text(json.dumps(doc, indent=1) + "\n")
    markdown = (f"Fuzz campaign: {result.cases:,} cases, seed {args.seed}, "
                f"{result.seconds:.0f} s\n\n{_table(result)}\n\n{_kinds_table(result)}\n")
    (args.out / "fuzz_inputs.md").write_text(markdown)
    print(markdown)
    for case in result.failures[:20]:
        print(f"FAILED case {case.index} ({case.target}, {case.kind}, {case.seed_name}): "
              f"{case.outcome}: {case.detail}")
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
