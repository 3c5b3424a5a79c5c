"""A site's privacy policy: what the *site* allows, whatever the coordinator's run config asks.

The run config is written by the coordinator and is the same for every site; the policy is written
by the site (``fedcodec join`` flags, or ``site-policy.toml`` in its state folder) and never leaves
it. Before any round the ClientApp compares the two (:func:`check_run`): a run may *tighten* the
policy (a coarser privacy unit, a smaller ε or δ, fewer reported metrics), never loosen it. A run
that asks for less is refused with one line naming the key, the value asked and the site's limit;
the coordinator sees that line as the site's error reply, the site logs it and keeps it in
``refusals.jsonl`` (``fedcodec privacy status`` shows them).

Defaults are the strict ones: patient-level DP-SGD, SecAgg+ required, ε ≤ 8, δ ≤ 1e-5, at least
:data:`MIN_PATIENTS` patients for patient-level training, and every optional metric allowed.
"""

from __future__ import annotations

import json
import logging
import time
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from fedcodec.shared.atomic_files import write_atomic
from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.privacy import PRIVACY_UNITS

log = logging.getLogger(__name__)

POLICY_FILE = "site-policy.toml"
REFUSALS_FILE = "refusals.jsonl"
REFUSAL_PREFIX = "fedcodec site policy"
"""Every refusal reason starts with this, so the coordinator can tell refusals from crashes."""

MIN_PATIENTS = 2000
"""Default minimum number of patients for patient-level training. ``fedcodec privacy plan --units
1000 1500 1750 2000`` (its reference recipe: 50 rounds x 20 local steps, 64 patients per Poisson
batch, σ = 1, δ = 1e-5) gives ε = 15.95 at 1,000 patients, 10.0 at 1,500, 8.4 at 1,750 and 7.24
at 2,000: 2,000
is the smallest round size at which that recipe stays within the default cap ε = 8. Below it the
same ε needs more noise per step (or fewer steps) than the codec's training tolerates, and at a
handful of patients q = 1 and one patient's data is in every step (ε ≈ 8 in six steps)."""

OPTIONAL_METRICS: tuple[str, ...] = ("heldout_bpp", "train_loss", "update_norm", "sample_rate",
                                     "noise_multiplier")
"""Scalars a site *may* report besides the protocol ones (site, unit, ε, δ, target ε, steps,
budget_exhausted): ``heldout_bpp`` and ``train_loss`` are computed on its data and not covered by
the accountant; ``sample_rate`` reveals the unit count when the run uses ``batch-units``."""

PROTOCOL_METRICS: tuple[str, ...] = ("site", "unit", "epsilon", "delta", "target_epsilon",
                                     "steps", "budget_exhausted")


@dataclass(frozen=True)
class SitePolicy:
    """What this site allows. Every field is a limit a run may tighten, never loosen."""

    unit: str = "patient"
    """Finest privacy unit the site accepts (patient ⊇ study ⊇ series ⊇ slice)."""
    dp: bool = True
    """DP-SGD required (a run with ``dp = false`` is refused)."""
    secagg: bool = True
    """SecAgg+ required (a round whose messages carry no SecAgg+ stage is refused)."""
    max_epsilon: float = 8.0
    """Largest target ε this site accepts (for its unit)."""
    max_delta: float = 1e-5
    """Largest δ this site accepts."""
    min_patients: int = MIN_PATIENTS
    """Fewest patients this site trains on at patient level (see :data:`MIN_PATIENTS`)."""
    metrics: tuple[str, ...] = field(default=OPTIONAL_METRICS)
    """Optional scalars this site may report (subset of :data:`OPTIONAL_METRICS`)."""

    def __post_init__(self) -> None:
        if self.unit not in PRIVACY_UNITS:
            raise FedcodecError(f"site policy: unknown unit {self.unit!r}; choose one of "
                                f"{', '.join(PRIVACY_UNITS)}")
        if not self.max_epsilon > 0 or not 0 < self.max_delta < 1:
            raise FedcodecError("site policy: max-epsilon must be > 0 and 0 < max-delta < 1")
        if self.min_patients < 1:
            raise FedcodecError("site policy: min-patients must be at least 1")
        unknown = sorted(set(self.metrics) - set(OPTIONAL_METRICS))
        if unknown:
            raise FedcodecError(f"site policy: unknown metric(s) {', '.join(unknown)}; allowed: "
                                f"{', '.join(OPTIONAL_METRICS)}")

    def describe(self) -> str:
        """One line for logs and ``privacy status``."""
        return (f"unit ≥ {self.unit}, DP {'required' if self.dp else 'optional'}, SecAgg+ "
                f"{'required' if self.secagg else 'optional'}, ε ≤ {self.max_epsilon:g}, "
                f"δ ≤ {self.max_delta:g}, ≥ {self.min_patients} patients at patient level, "
                f"metrics: {', '.join(self.metrics) or 'none'}")


def _toml_key(name: str) -> str:
    return name.replace("_", "-")


def policy_to_toml(policy: SitePolicy) -> str:
    lines = ["# fedcodec site privacy policy: a run may tighten it, never loosen it",
             "# (docs/guide-hospital-site.md#what-the-site-controls)"]
    for name, value in asdict(policy).items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        elif isinstance(value, (list, tuple)):
            text = "[" + ", ".join(json.dumps(v) for v in value) + "]"
        else:
            text = json.dumps(value)
        lines.append(f"{_toml_key(name)} = {text}")
    return "\n".join(lines) + "\n"


def policy_from_mapping(values: Mapping[str, Any], source: str = "site policy") -> SitePolicy:
    """Build a policy from TOML-style keys (``max-epsilon``); unknown keys are an error."""
    known = {_toml_key(f.name): f.name for f in fields(SitePolicy)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise FedcodecError(f"{source}: unknown key(s) {', '.join(unknown)}; known: "
                            f"{', '.join(known)}")
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        name = known[key]
        default = getattr(SitePolicy(), name)
        try:
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise TypeError("expected true or false")
                kwargs[name] = value
            elif isinstance(default, tuple):
                if isinstance(value, str):
                    value = [v for v in value.split(",") if v]
                kwargs[name] = tuple(str(v).strip() for v in value)
            else:
                kwargs[name] = type(default)(value)
        except (TypeError, ValueError) as exc:
            raise FedcodecError(f"{source}: {key} = {value!r}: {exc}") from None
    return SitePolicy(**kwargs)


def policy_path(state_dir: Path) -> Path:
    return Path(state_dir) / POLICY_FILE


def load_policy(state_dir: Path) -> SitePolicy:
    """The policy in ``state_dir`` (the strict defaults when there is no policy file)."""
    path = policy_path(state_dir)
    if not path.exists():
        return SitePolicy()
    try:
        values = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise FedcodecError(f"site policy {path} is unreadable: {exc}") from None
    return policy_from_mapping(values, str(path))


def save_policy(state_dir: Path, policy: SitePolicy) -> Path:
    path = policy_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, policy_to_toml(policy).encode())
    return path


def changed_policy(state_dir: Path, **changes: Any) -> SitePolicy:
    """The stored policy with ``changes`` applied (None values ignored); validated, not saved."""
    current = load_policy(state_dir)
    wanted = {k: v for k, v in changes.items() if v is not None}
    return replace(current, **wanted) if wanted else current


def update_policy(state_dir: Path, **changes: Any) -> SitePolicy:
    """Apply ``changes`` (None values ignored) to the stored policy and save it."""
    policy = changed_policy(state_dir, **changes)
    save_policy(state_dir, policy)
    return policy


def effective_policy(state_dir: Path, node_config: Mapping[str, Any]) -> SitePolicy:
    """The stored policy, tightened by a ``target-epsilon`` in the node config (older joins)."""
    policy = load_policy(state_dir)
    if "target-epsilon" in node_config:
        try:
            cap = float(node_config["target-epsilon"])
        except (TypeError, ValueError):
            raise FedcodecError("node config target-epsilon is not a number") from None
        policy = replace(policy, max_epsilon=min(policy.max_epsilon, cap))
    return policy


def _bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")


def requested_metrics(run_config: Mapping[str, Any]) -> tuple[str, ...]:
    """Optional metrics the run asks for: ``site-metrics`` (comma list; every optional metric when
    absent), without ``heldout_bpp``/``train_loss`` when ``report-site-metrics = false``."""
    asked: tuple[str, ...] = OPTIONAL_METRICS
    if "site-metrics" in run_config:
        asked = tuple(m.strip() for m in str(run_config["site-metrics"]).split(",") if m.strip())
        unknown = sorted(set(asked) - set(OPTIONAL_METRICS))
        if unknown:
            raise FedcodecError(f"run config site-metrics: unknown metric(s) {', '.join(unknown)}")
    if not _bool(run_config.get("report-site-metrics", True)):
        asked = tuple(m for m in asked if m not in ("heldout_bpp", "train_loss"))
    return asked


class SiteRefusal(FedcodecError):
    """A round this site will not take part in; ``str`` is the one-line reason."""


def check_run(policy: SitePolicy, run_config: Mapping[str, Any], site: str,
              secagg: bool) -> None:
    """Raise :class:`SiteRefusal` if the run (or this round's protocol) asks for less than
    ``policy``. ``secagg`` says whether the round's message is a SecAgg+ stage."""
    def refuse(what: str) -> None:
        raise SiteRefusal(f"{REFUSAL_PREFIX}: site {site} refuses the round: {what}")

    unit = str(run_config.get("unit", "patient"))
    if unit not in PRIVACY_UNITS:
        refuse(f"unit={unit!r} is not a privacy unit")
    if PRIVACY_UNITS.index(unit) > PRIVACY_UNITS.index(policy.unit):
        refuse(f"unit={unit} is finer than the site's unit {policy.unit}")
    if policy.dp and not _bool(run_config.get("dp", True)):
        refuse("dp=false but the site requires DP-SGD")
    if policy.secagg and not secagg:
        refuse("no SecAgg+ (secagg=false) but the site requires secure aggregation")
    try:
        epsilon = float(run_config.get("target-epsilon", 8.0))
        delta = float(run_config.get("delta", 1e-5))
    except (TypeError, ValueError):
        refuse("target-epsilon / delta are not numbers")
    if not epsilon <= policy.max_epsilon:
        refuse(f"target-epsilon={epsilon:g} exceeds the site's cap {policy.max_epsilon:g}")
    if not delta <= policy.max_delta:
        refuse(f"delta={delta:g} exceeds the site's cap {policy.max_delta:g}")
    try:
        asked = requested_metrics(run_config)
    except FedcodecError as exc:
        refuse(str(exc))
    extra = [m for m in asked if m not in policy.metrics]
    if extra:
        refuse(f"asks for metric(s) {', '.join(extra)} the site does not report "
               f"(site-metrics allowed: {', '.join(policy.metrics) or 'none'})")


def check_units(policy: SitePolicy, site: str, unit: str, n_units: int,
                run_config: Mapping[str, Any]) -> None:
    """Refuse patient-level training with fewer than ``policy.min_patients`` patients, with the
    plan's figures for this site's size under the run's recipe (σ = 1 for the projection)."""
    if unit != "patient" or n_units >= policy.min_patients:
        return
    from fedcodec.shared.privacy.planning import plan_epsilon

    rounds = int(run_config.get("num-server-rounds", 3))
    steps = int(run_config.get("local-steps", 20))
    rate = float(run_config.get("sample-rate", 0.0) or 0.0)
    batch = rate * max(n_units, 1) if rate else float(run_config.get("batch-units", 8.0))
    delta = float(run_config.get("delta", 1e-5))
    row = plan_epsilon([max(n_units, 1)], rounds, steps, batch, 1.0, delta)[0]
    raise SiteRefusal(
        f"{REFUSAL_PREFIX}: site {site} refuses patient-level training: {n_units} patient(s) < "
        f"minimum {policy.min_patients}; at this size {rounds} rounds x {steps} steps with "
        f"{batch:g} patients per batch (q = {row.sample_rate:.3f}) at σ = 1 spend "
        f"ε = {row.epsilon:.1f} (patient, δ = {delta:g}); see `fedcodec privacy plan --units "
        f"{n_units} {policy.min_patients} --rounds {rounds} --local-steps {steps} --batch-units "
        f"{batch:g}`")


def allowed_metrics(policy: SitePolicy, run_config: Mapping[str, Any],
                    metrics: dict[str, Any]) -> dict[str, Any]:
    """Only the protocol scalars and the optional ones both the run asks for and the policy allows."""
    asked = set(requested_metrics(run_config)) & set(policy.metrics)
    return {k: v for k, v in metrics.items() if k in PROTOCOL_METRICS or k in asked}


def log_refusal(state_dir: Path, reason: str, round_index: int | None = None) -> None:
    """Log the refusal and append it to the site's ``refusals.jsonl`` (never raises)."""
    log.warning("%s", reason)
    try:
        path = Path(state_dir) / REFUSALS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            handle.write(json.dumps({"time": time.time(), "round": round_index,
                                     "reason": reason}) + "\n")
    except OSError as exc:
        log.warning("could not record the refusal in %s: %s", state_dir, exc)


def read_refusals(state_dir: Path) -> list[dict[str, Any]]:
    path = Path(state_dir) / REFUSALS_FILE
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
