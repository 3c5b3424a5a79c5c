"""An empirical audit of the site's DP-SGD training: canaries, one training run, an ε lower bound.

What is audited is the training a site runs in a federated round — :func:`train_local` with its
Opacus path (Poisson sampling of units, per-unit clipping, Gaussian noise, Adam), the noise
calibrated by the site's accountant to the claimed ε — starting from the shipped weights, on the
site's own units plus ``m`` **canaries**. A canary is one extra privacy unit: the pixels (context
features) of one network from a real unit, with targets moved several local-activity units away
from the prediction, i.e. a mislabelled record whose gradient is large and points its own way.
Each canary is included with probability 1/2 (the audit's secret coin flips).

Score (white-box, as the coordinator or anyone holding the model update could compute): how far
training moved the first layer of the canary's network *against* the canary's own gradient at
the start (minus what all canaries of that network ask for alike), ``score = -<W_T - W_0, g>``
with ``|g| = 1``. Included canaries were descended on; excluded ones only by
accident. The auditor guesses "in" for the highest ``k`` scores and "out" for the lowest ``k``,
counts correct guesses and turns them into an ε lower bound
(:mod:`fedcodec.shared.privacy.one_run_audit`, Steinke, Nasr and Jagielski 2023).

``positive_control`` trains the same way with ``dp = false`` (plain Adam, no clipping, no noise):
the guesses must then be nearly all correct and the lower bound near the most ``2k`` guesses can
show, far above the noised run's: evidence that the audit has the power to catch a leak.
"""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from fedcodec.client.federated.dp_training import LocalTrainConfig, UnitBatcher, UnitLoss, train_local
from fedcodec.client.federated.unit_samples import FIELDS, KeyPool, UnitSamples, merge_unit_samples
from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.neural.model import NeuralPredictor, from_integer
from fedcodec.shared.neural.weights import DEFAULT_WEIGHTS, NET_KEYS, NeuralWeights
from fedcodec.shared.privacy import PrivacyAccountant
from fedcodec.shared.privacy.one_run_audit import epsilon_lower_bound


FEATURE_PERCENTILE = 75.0


@dataclass(frozen=True)
class AuditConfig:
    """One audit run; the defaults are the full audit, :func:`quick_config` the short one."""

    canaries: int = 300
    """At most one per network input (429 with the shipped networks); more canaries interfere
    with each other (400 canaries / 200 steps found less than 300 / 160 in the positive control)."""
    steps: int = 160
    sample_rate: float = 0.1
    pixels_per_unit: int = 32
    max_grad_norm: float = 0.25
    lr: float = 2e-3
    target_epsilon: float = 8.0
    delta: float = 1e-5
    guess_fraction: float = 0.3
    """Share of canaries guessed (half "in" from the top, half "out" from the bottom), fixed
    before the run as the audit requires; the rest abstain."""
    confidence: float = 0.95
    canary_shift: float = 3.0
    """How far (in local-activity units) a canary's targets sit from the prediction."""
    positive_control: bool = False
    seed: int = 0


def quick_config(**changes) -> AuditConfig:
    """Well under a minute a run on one loaded core: 200 canaries, 60 steps."""
    return AuditConfig(**{"canaries": 200, "steps": 60, **changes})


@dataclass
class AuditResult:
    claimed_epsilon: float
    """What the site's accountant charged for this training (inf for the positive control)."""
    empirical_epsilon: float
    """The audit's lower bound at ``confidence``."""
    canaries: int
    included: int
    guesses: int
    correct: int
    units: int
    steps: int
    noise_multiplier: float | None
    seconds: float
    config: dict

    def line(self) -> str:
        claim = "∞ (no noise)" if math.isinf(self.claimed_epsilon) else f"{self.claimed_epsilon:.2f}"
        return (f"{'positive control (no DP)' if self.config['positive_control'] else 'DP-SGD'}: "
                f"empirical ε ≥ {self.empirical_epsilon:.2f} at {self.config['confidence']:.0%} "
                f"confidence (claimed ε = {claim}, δ = {self.config['delta']:g}); "
                f"{self.correct}/{self.guesses} guesses correct on {self.canaries} canaries, "
                f"{self.units} site units, {self.steps} steps")


def make_canaries(population: UnitSamples, count: int, pixels: int, shift: float,
                  rng: np.random.Generator) -> UnitSamples:
    """``count`` canary units. Each lives in one network: ``pixels`` real pixels of that network
    (their prediction baseline ``mu0`` and activity), all given one random sign pattern of typical
    feature magnitude as context (so its first-layer gradient points its own way) and targets
    ``shift`` local-activity units (random sign) away from the baseline: a mislabelled record."""
    keys = [k for k in NET_KEYS if population.pools[k].arrays["target"].size >= pixels]
    slots = [(k, j) for k in keys for j in range(population.pools[k].arrays["features"].shape[1])]
    if count > len(slots):
        raise FedcodecError(f"at most {len(slots)} canaries (one per network input), not {count}")
    picked = [slots[i] for i in rng.choice(len(slots), size=count, replace=False)]
    pools = {}
    for key in NET_KEYS:
        mine = np.array([i for i, (k, _) in enumerate(picked) if k == key], dtype=np.int64)
        source = population.pools[key].arrays
        if mine.size:
            # every canary alike but for its input and its sign: the typical pixel of the network
            typical = {name: np.median(source[name], axis=0) for name in FIELDS if name != "features"}
            n = mine.size * pixels
            arrays = {name: np.full(n, np.round(typical[name]), dtype=source[name].dtype)
                      for name in typical}
            scale = float(np.percentile(np.abs(source["features"]), FEATURE_PERCENTILE)) or 1.0
            features = np.zeros((mine.size, source["features"].shape[1]))
            features[np.arange(mine.size), [picked[i][1] for i in mine]] = scale
            arrays["features"] = np.repeat(features, pixels, axis=0).astype(source["features"].dtype)
            sign = np.repeat(rng.choice([-1.0, 1.0], size=mine.size), pixels)
            moved = typical["mu0"] + sign * shift * typical["s16"] / 16.0
            arrays["target"] = np.clip(np.round(moved), 0, typical["maxval"]).astype(
                source["target"].dtype)
        else:
            arrays = {name: source[name][:0].copy() for name in FIELDS}
        counts = np.zeros(count, np.int64)
        counts[mine] = pixels
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        pools[key] = KeyPool(arrays, offsets, counts)
    return UnitSamples(population.unit, [f"canary:{i}" for i in range(count)], pools)


def select_units(samples: UnitSamples, keep: np.ndarray) -> UnitSamples:
    """The units ``keep`` (indices) of ``samples``, in that order."""
    pools = {}
    for key, pool in samples.pools.items():
        rows = np.concatenate([np.arange(pool.offsets[u], pool.offsets[u] + pool.counts[u])
                               for u in keep]) if len(keep) else np.zeros(0, np.int64)
        counts = pool.counts[keep]
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        pools[key] = KeyPool({n: a[rows.astype(np.int64)] for n, a in pool.arrays.items()},
                             offsets, counts)
    return UnitSamples(samples.unit, [samples.unit_ids[u] for u in keep], pools)


def canary_directions(model: NeuralPredictor, canaries: UnitSamples,
                      pixels: int) -> list[tuple[str, torch.Tensor]]:
    """Each canary's network and the unit direction of its gradient on that network's first layer
    at the start (non-zero only in the column of the canary's input)."""
    loss = UnitLoss(model)
    batcher = UnitBatcher(canaries, pixels, seed=1)
    keys, grads = [], []
    for u in range(canaries.n_units):
        key = next(k for k, p in canaries.pools.items() if p.counts[u] > 0)
        layer = model.nets[key].hidden[0].weight
        model.zero_grad()
        loss({key: batcher.batch(np.array([u]))[key]}).sum().backward()
        keys.append(key)
        grads.append(layer.grad.detach().clone())
    model.zero_grad()
    out = []
    for key, g in zip(keys, grads):
        out.append((key, g / (float(g.norm()) or 1.0)))
    return out


def run_audit(population: UnitSamples, config: AuditConfig, state_dir: Path | None = None) -> AuditResult:
    """Insert canaries, train once as the site trains, score, guess, bound ε."""
    started = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    canaries = make_canaries(population, config.canaries, config.pixels_per_unit,
                             config.canary_shift, rng)
    included = rng.random(config.canaries) < 0.5
    model = from_integer(NeuralWeights.load(DEFAULT_WEIGHTS))
    start = {k: net.hidden[0].weight.detach().clone() for k, net in model.nets.items()}
    directions = canary_directions(model, canaries, config.pixels_per_unit)
    training = merge_unit_samples([population, select_units(canaries, np.flatnonzero(included))])
    train = LocalTrainConfig(steps=config.steps, sample_rate=config.sample_rate,
                             pixels_per_unit=config.pixels_per_unit, lr=config.lr,
                             dp=not config.positive_control, max_grad_norm=config.max_grad_norm,
                             planned_rounds=1, seed=config.seed)
    with tempfile.TemporaryDirectory(dir=state_dir) as tmp:
        accountant = None
        if not config.positive_control:
            accountant = PrivacyAccountant(Path(tmp) / "privacy-audit.json", population.unit,
                                           config.target_epsilon, config.delta)
        with warnings.catch_warnings():  # Opacus' RDP order hint: the bound is still valid
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            result = train_local(model, training, train, accountant)
        claimed = accountant.epsilon if accountant is not None else math.inf
    moved = {k: net.hidden[0].weight.detach() - start[k] for k, net in model.nets.items()}
    scores = np.array([-float((moved[key] * g).sum()) for key, g in directions])
    k = max(1, int(config.guess_fraction * config.canaries / 2))
    order = np.argsort(scores)
    correct = int(included[order[-k:]].sum() + (~included[order[:k]]).sum())
    bound = epsilon_lower_bound(config.canaries, 2 * k, correct, config.delta, config.confidence)
    return AuditResult(claimed, bound, config.canaries, int(included.sum()), 2 * k, correct,
                       population.n_units, result.steps, result.noise_multiplier,
                       time.perf_counter() - started, asdict(config))


def run_site_audit(data_dir: Path, quick: bool = False, unit: str = "patient",
                   target_epsilon: float = 8.0, seed: int = 0, positive_control: bool = False,
                   out: Path | None = None) -> list[AuditResult]:
    """``fedcodec privacy audit``: the DP run (and the positive control) on a site's folder."""
    import json

    from fedcodec.client.federated.site_data import SiteDataConfig, load_site
    from fedcodec.shared.privacy import PRIVACY_UNITS

    if unit not in PRIVACY_UNITS:
        raise FedcodecError(f"unknown privacy unit {unit!r}; choose one of {', '.join(PRIVACY_UNITS)}")
    if not Path(data_dir).is_dir():
        raise FedcodecError(f"data folder {data_dir} does not exist")
    site = load_site(Path(data_dir), SiteDataConfig(unit=unit, pixels_per_group=64, max_slices=16,
                                                    holdout_fraction=0.0, seed=seed))
    if site.train.n_units == 0:
        raise FedcodecError(f"no readable MR series in {data_dir}: nothing to audit")
    make = quick_config if quick else AuditConfig
    runs = [make(target_epsilon=target_epsilon, seed=seed)]
    if positive_control:
        runs.append(make(target_epsilon=target_epsilon, seed=seed, positive_control=True))
    results = [run_audit(site.train, config) for config in runs]
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        body = [{**asdict(r), "claimed_epsilon": None if math.isinf(r.claimed_epsilon)
                 else r.claimed_epsilon, "data_dir": str(data_dir)} for r in results]
        (Path(out) / "audit.json").write_text(json.dumps(body, indent=1) + "\n")
    return results
