"""What every demo step gets (configuration, console, folders, results of earlier steps) and
what it gives back (status, key numbers, a report section)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

OK, SKIPPED, FAILED = "ok", "skipped", "failed"


@dataclass(frozen=True)
class DemoConfig:
    """How the demo runs; ``quick`` is the < 2 minute version the tests use."""

    out_dir: Path = Path("out/demo")
    quick: bool = False
    steps: tuple[str, ...] | None = None
    """Step names to run (their prerequisites are added); None = all."""
    rounds: int | None = None
    """Federated rounds (default 3, quick 1)."""
    analysis_model: Path | None = None
    """A model folder from ``fedcodec analyze train``; default: a toy head trained here."""
    progress: bool = True


@dataclass
class StepOutcome:
    """The result of one step, for the summary table and the report."""

    status: str
    summary: str
    """Key numbers on one line (the summary table's middle column)."""
    section: list[str] = field(default_factory=list)
    """Markdown lines of the step's report section (no heading)."""
    figures: list[Path] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    """Numbers logged to the demo's MLflow run (prefixed with the step name)."""
    seconds: float = 0.0


@dataclass
class DemoContext:
    """Shared by the steps of one run; ``results`` holds what later steps need."""

    config: DemoConfig
    console: Console
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.config.out_dir

    @property
    def quick(self) -> bool:
        return self.config.quick

    @property
    def mlflow_db(self) -> Path:
        return (self.out / "mlflow.db").resolve()

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.mlflow_db}"

    def folder(self, name: str) -> Path:
        path = self.out / name
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass(frozen=True)
class DemoStep:
    """One titled step: ``run(ctx)`` does the work; ``unavailable(ctx)`` names a missing
    component (``"component (reason)"``) or returns None when the step can run."""

    name: str
    title: str
    run: Callable[[DemoContext], StepOutcome]
    unavailable: Callable[[DemoContext], str | None] = lambda ctx: None
    needs: tuple[str, ...] = ()
