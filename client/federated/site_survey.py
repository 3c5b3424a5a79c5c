"""What a site's folder holds for training: MR series only, every skipped file or series counted.

``fedcodec join`` surveys the folder before it starts the SuperNode (an empty or unreadable folder,
or one without a single MR image, is refused there, not with a traceback every round) and prints
the summary; the ClientApp's :func:`mr_series` applies the same filter every round, so a CT series
in the export is never trained on. The summary is kept in the state folder (``site-summary.json``)
for ``fedcodec privacy status``; it holds counts only, never ids.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fedcodec.shared.atomic_files import write_atomic
from fedcodec.shared.dicom import Series, read_series
from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.privacy import privacy_unit

log = logging.getLogger(__name__)

SUMMARY_FILE = "site-summary.json"
TRAINED_MODALITY = "MR"


def skip_category(reason: str) -> str:
    """A short category for a reader's skip reason (counts are logged per category)."""
    text = reason.lower()
    if text.startswith("not a dicom"):
        return "not-DICOM file(s)"
    if text.startswith("duplicate"):
        return "duplicate file(s)"
    if any(word in text for word in ("corrupt", "truncated", "unreadable")):
        return "unreadable or corrupt DICOM file(s)"
    return "file(s) without a usable image (" + reason.split(":")[0].strip()[:60] + ")"


@dataclass
class SiteSurvey:
    """Counts of what a site trains on and of what it skipped, by reason."""

    site: str = ""
    patients: int = 0
    studies: int = 0
    series: int = 0
    slices: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    """What was skipped -> how many (files per reader category, series per non-MR modality)."""

    def summary(self) -> str:
        skipped = "; ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
        return (f"site {self.site}: {self.patients} patients, {self.studies} studies, {self.series} "
                f"MR series, {self.slices} slices; skipped: {skipped or 'nothing'}")


def mr_series(series: list[Series]) -> tuple[list[Series], Counter]:
    """The MR series, and a count of the others as ``"series of modality X"``."""
    kept, other = [], Counter()
    for s in series:
        if s.modality.upper() == TRAINED_MODALITY:
            kept.append(s)
        else:
            other[f"series of modality {s.modality or '(none)'} (not MR)"] += 1
    return kept, other


def count_skipped(skipped_files) -> Counter:
    return Counter(skip_category(item.reason) for item in skipped_files)


def read_mr_series(data_dir: Path, site: str = "") -> tuple[list[Series], SiteSurvey]:
    """Read ``data_dir``, keep its MR series, log one line per skip reason with its count.

    Raises a one-line :class:`FedcodecError` for a missing, empty or unreadable folder, or one
    without any MR image."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FedcodecError(f"site data folder {data_dir} does not exist or is not a folder")
    try:
        empty = not any(p.is_file() for p in data_dir.rglob("*"))
    except OSError as exc:
        raise FedcodecError(f"site data folder {data_dir} is unreadable: {exc.strerror}") from None
    if empty:
        raise FedcodecError(f"site data folder {data_dir} is empty (no files)")
    series, skipped_files = read_series(data_dir)
    kept, other = mr_series(series)
    skipped = count_skipped(skipped_files) + other
    for reason, n in sorted(skipped.items()):
        log.warning("site %s: skipped %d %s", site or data_dir.name, n, reason)
    if not kept:
        raise FedcodecError(f"site data folder {data_dir} holds no MR series (skipped: "
                            + ", ".join(f"{n} {r}" for r, n in sorted(skipped.items())) + ")")
    survey = SiteSurvey(
        site=site or data_dir.name, patients=len({privacy_unit(s, "patient") for s in kept}),
        studies=len({privacy_unit(s, "study") for s in kept}),
        series=len(kept), slices=sum(int(s.volume.shape[0]) for s in kept),
        skipped=dict(skipped))
    return kept, survey


def save_survey(state_dir: Path, survey: SiteSurvey) -> Path:
    path = Path(state_dir) / SUMMARY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(asdict(survey), indent=1).encode())
    return path


def load_survey(state_dir: Path) -> SiteSurvey | None:
    path = Path(state_dir) / SUMMARY_FILE
    if not path.exists():
        return None
    try:
        return SiteSurvey(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
