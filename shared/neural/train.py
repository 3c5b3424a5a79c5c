"""Training the neural codec: plain functions, CPU, bounded in time.

1. :func:`collect_samples` walks volumes exactly as the codec does (same pyramid, same
   ``group_context``) and keeps a random subset of every group's pixels, for each network
   (group x number of references); :func:`collect_slice_samples` gives the same samples
   grouped per slice (the federated slice-level privacy unit needs to know which slice a pixel
   came from).
2. :func:`train_predictor` fits the float model with the discretised-logistic code length;
   :class:`PredictorTrainer` is the same loop one step at a time, checkpointable and resumable
   (``fedcodec train``).
3. :func:`fit_tables` runs the *quantised* networks on the samples and turns the residual
   histograms of every (scale bin, phase) into count tables, smoothed towards the logistic prior.
4. :func:`estimated_bits` gives the ideal code length of samples under the integer model and
   tables (what the codec will spend, minus a few bytes of rANS overhead per slice).

Lossless training data are the original slices (the reconstruction equals them). Near-lossless
reuses the same networks; see docs/neural-codec.md for what would improve it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from fedcodec.shared.neural.features import (
    GroupContext,
    feature_set_of,
    group_context,
    group_mu0,
    level_noise,
)
from fedcodec.shared.neural.fixed_point import ONE, ilog2_q6
from fedcodec.shared.neural.geometry import GROUPS, group_positions, pyramid_shapes
from fedcodec.shared.neural.model import (
    NeuralPredictor,
    clamp_parameters,
    logistic_bits,
    to_integer,
)
from fedcodec.shared.neural.slice_coder import predicted_log2_scale_q6, predicted_mean_q3
from fedcodec.shared.neural.tables import (
    ALPHABET,
    CENTRE_PHASE,
    ESCAPE,
    HALF_RANGE,
    N_BINS,
    PHASES,
    SHIFTS,
    logistic_counts,
    probabilities_to_counts,
    scale_bin,
    table_key,
)
from fedcodec.shared.neural.volume_context import detect_period, reference_offsets
from fedcodec.shared.neural.weights import MAX_REFS, NeuralWeights, net_key


@dataclass
class Samples:
    """Training pixels of one network."""

    features: list[np.ndarray] = field(default_factory=list)
    target: list[np.ndarray] = field(default_factory=list)
    mu0: list[np.ndarray] = field(default_factory=list)
    s16: list[np.ndarray] = field(default_factory=list)
    log_s16: list[np.ndarray] = field(default_factory=list)
    maxval: list[np.ndarray] = field(default_factory=list)

    def add(self, ctx, target: np.ndarray, maxval: int) -> None:
        self.features.append(ctx.features.T.astype(np.int16))
        self.target.append(target.astype(np.int32))
        self.mu0.append(ctx.mu0.astype(np.int32))
        self.s16.append(ctx.s16.astype(np.int32))
        self.log_s16.append(ctx.log_s16.astype(np.int32))
        self.maxval.append(np.full(target.size, maxval, dtype=np.int32))

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            name: np.concatenate(getattr(self, name))
            for name in ("features", "target", "mu0", "s16", "log_s16", "maxval")
        }


def error_pyramid(image: np.ndarray, signed: bool = False) -> list[np.ndarray]:
    """|x - mu0| (``signed``: x - mu0) of every pixel at every level, as the lossless codec
    records them (int32)."""
    shapes = pyramid_shapes(*image.shape)
    errors = np.zeros((1, 1), dtype=np.int32)
    out = [errors]
    for level in range(len(shapes) - 2, -1, -1):
        stride = 1 << level
        grid = np.ascontiguousarray(image[::stride, ::stride])
        level_errors = np.zeros(shapes[level], dtype=np.int32)
        level_errors[0::2, 0::2] = errors
        for group in GROUPS:
            positions = group_positions(grid.shape, group)
            if positions.size:
                error = grid.reshape(-1)[positions] - group_mu0(grid, group)
                level_errors.reshape(-1)[positions] = error if signed else np.abs(error)
        errors = level_errors
        out.append(errors)
    return out[::-1]


def reference_sets(index: int, period: int) -> dict[int, list[tuple[int, ...]]]:
    """Reference offsets to train each network on for slice ``index``.

    The one-reference network must handle both kinds the codec uses (previous slice, previous
    volume), so both are sampled when they exist. The two-reference network sees the codec's pair
    (previous volume, previous slice) where the series has a period, and otherwise the two
    previous slices: without that, a training set whose only multi-volume series repeat one
    volume (the GE multiphase runs do) teaches it nothing about real time series.
    """
    out: dict[int, list[tuple[int, ...]]] = {0: [()]}
    used = reference_offsets(index, period)
    ones = []
    if index >= 1:
        ones.append((1,))
    if period > 1 and index >= period:
        ones.append((period,))
    if ones:
        out[1] = ones
    if len(used) == 2:
        out[2] = [used]
    elif index >= 2:
        out[2] = [(2, 1)]
    return out


@dataclass
class SliceSamples:
    """The training pixels one slice of a volume contributes, per network."""

    index: int
    """Position of the slice in its volume."""
    samples: dict[str, Samples]


def _empty_samples() -> dict[str, Samples]:
    return {net_key(g.name, n): Samples() for n in range(MAX_REFS + 1) for g in GROUPS}


def _sample_slice(volume: np.ndarray, index: int, period: int, maxval: int, fraction: float,
                  rng: np.random.Generator, feature_set: int = 1) -> dict[str, Samples]:
    """One slice's samples: every group of every pyramid level keeps ``fraction`` of its pixels."""
    out = _empty_samples()
    image = volume[index].astype(np.int32)
    shapes = pyramid_shapes(*image.shape)
    signed = error_pyramid(image, signed=True)
    errors = [np.abs(e) for e in signed]
    for n_refs, ref_lists in reference_sets(int(index), period).items():
        offsets = ref_lists[rng.integers(len(ref_lists))]
        refs = [volume[index - off].astype(np.int32) for off in offsets]
        for level in range(len(shapes) - 1):
            stride = 1 << level
            grid = np.ascontiguousarray(image[::stride, ::stride])
            noise = level_noise(grid[::2, ::2], errors[level + 1])
            level_refs = [np.ascontiguousarray(r[::stride, ::stride]) for r in refs]
            for group in GROUPS:
                positions = group_positions(grid.shape, group)
                n = positions.size
                if n == 0:
                    continue
                count = min(n, max(16, int(n * fraction)))
                keep = np.sort(rng.choice(n, count, replace=False))
                ctx = group_context(grid, errors[level], level_refs, group, level, noise, keep,
                                    signed[level], feature_set)
                target = grid.reshape(-1)[positions[keep]]
                out[net_key(group.name, n_refs)].add(ctx, target, maxval)
    return out


def collect_slice_samples(volume: np.ndarray, bits: int, fraction: float = 1 / 8, seed: int = 0,
                          slices: np.ndarray | None = None, feature_set: int = 1
                          ) -> list[SliceSamples]:
    """Samples of the chosen ``slices`` of one volume (default: all), one entry per slice.

    The public way to know which slice a training pixel came from (slice-level privacy units):
    the walk, reference choice and random draws are those of :func:`collect_samples`, so
    ``collect_samples([(volume, bits)], fraction, series_pixels=volume.size, seed=seed)`` holds
    exactly these pixels, concatenated in slice order.
    """
    rng = np.random.default_rng(seed)
    return _sample_volume(volume, bits, fraction, rng, slices, feature_set)


def _sample_volume(volume: np.ndarray, bits: int, fraction: float, rng: np.random.Generator,
                   slices: np.ndarray | None, feature_set: int = 1) -> list[SliceSamples]:
    period = detect_period(volume)
    chosen = np.arange(volume.shape[0]) if slices is None else slices
    maxval = (1 << bits) - 1
    return [SliceSamples(int(index), _sample_slice(volume, int(index), period, maxval, fraction,
                                                   rng, feature_set))
            for index in chosen]


def samples_feature_set(samples: dict[str, Samples]) -> int:
    """The feature set the samples were collected with (from the width of their contexts)."""
    groups = {g.name: g for g in GROUPS}
    for key, s in samples.items():
        if s.features:
            return feature_set_of(groups[key[0]], int(key[1:]), s.features[0].shape[1])
    return 1


def merge_samples(parts: list[dict[str, Samples]]) -> dict[str, Samples]:
    """Per-network samples of several parts, concatenated in order (no array copies)."""
    out = _empty_samples()
    for part in parts:
        for key, s in part.items():
            for name in ("features", "target", "mu0", "s16", "log_s16", "maxval"):
                getattr(out[key], name).extend(getattr(s, name))
    return out


def collect_samples(
    volumes: list[tuple[np.ndarray, int]],
    fraction: float = 1 / 8,
    series_pixels: int = 1 << 21,
    seed: int = 0,
    progress: bool = True,
    feature_set: int = 1,
) -> dict[str, Samples]:
    """Sample context vectors and targets from ``(volume, bits)`` pairs (lossless walk).

    Every group keeps ``fraction`` of its pixels (at least 16), so big images weigh in the loss as
    they weigh in the bytes; each series contributes at most ``series_pixels`` pixels (slices
    chosen at random), so long 64x64 time series do not drown the rest.
    """
    rng = np.random.default_rng(seed)
    iterator = volumes
    if progress:
        from tqdm import tqdm

        iterator = tqdm(volumes, desc="sampling", leave=False)
    parts = []
    for volume, bits in iterator:
        n_slices = volume.shape[0]
        max_slices = max(1, series_pixels // (volume.shape[1] * volume.shape[2]))
        chosen = np.arange(n_slices)
        if n_slices > max_slices:
            chosen = np.sort(rng.choice(n_slices, max_slices, replace=False))
        parts.extend(s.samples for s in _sample_volume(volume, bits, fraction, rng, chosen,
                                                       feature_set))
    return merge_samples(parts)


def _tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    t = {k: torch.from_numpy(v.astype(np.float32)) for k, v in arrays.items() if k != "features"}
    t["features"] = torch.from_numpy(arrays["features"].astype(np.float32) / ONE)
    return t


def _bits(net, data, idx=None) -> torch.Tensor:
    pick = (lambda t: t) if idx is None else (lambda t: t[idx])
    out = net(pick(data["features"]))
    return logistic_bits(out, pick(data["target"]), pick(data["mu0"]), pick(data["s16"]),
                         pick(data["log_s16"]))


@dataclass
class TrainSettings:
    """Knobs of :class:`PredictorTrainer` (the defaults of :func:`train_predictor`)."""

    hidden: int = 32
    depth: int = 2
    epochs: int = 20
    batch: int = 4096
    lr: float = 3e-3
    seed: int = 0
    time_budget_s: float = 3600.0
    max_steps: int = 2000
    min_steps: int = 0


@dataclass
class TrainEvent:
    """What :meth:`PredictorTrainer.run` yields: one Adam step, or the end of one network."""

    kind: str
    """``"step"`` or ``"net_done"``."""
    key: str
    global_step: int
    step: int
    steps: int
    loss: float


class PredictorTrainer:
    """:func:`train_predictor` one Adam step at a time, with a state that saves and restores.

    Networks train one after another. Between any two yielded events, :meth:`state_dict` captures
    everything the rest of the run depends on (parameters, Adam and schedule state, the batch
    permutation, torch's RNG, the step counts, the time spent), so a run restored from it with
    :meth:`load_state_dict` continues exactly as the uninterrupted run would have (same thread
    count assumed). A network's step count is fixed when it starts (including any shortening
    for the time budget) and kept in the state.
    """

    def __init__(self, samples: dict[str, Samples], settings: TrainSettings | None = None,
                 model: NeuralPredictor | None = None) -> None:
        self.settings = settings or TrainSettings()
        torch.manual_seed(self.settings.seed)
        self.model = model or NeuralPredictor(self.settings.hidden, self.settings.depth,
                                              samples_feature_set(samples))
        self.samples = samples
        self.keys = [k for k in self.model.nets if samples[k].target]
        self.net_index = 0
        self.step = 0
        self.steps = 0
        """Steps of the current network; 0 until it starts."""
        self.global_step = 0
        self.report: dict[str, float] = {}
        self._elapsed = 0.0
        self._session_start = time.perf_counter()
        self._data: dict[str, torch.Tensor] | None = None
        self._opt: torch.optim.Optimizer | None = None
        self._sched = None
        self._perm: torch.Tensor | None = None
        self._cursor = 0

    @property
    def done(self) -> bool:
        return self.net_index >= len(self.keys)

    def elapsed(self) -> float:
        return self._elapsed + time.perf_counter() - self._session_start

    def planned_steps(self) -> int:
        """Steps of every network as the settings ask (before any shortening for time)."""
        s = self.settings
        total = 0
        for key in self.keys:
            n = sum(len(t) for t in self.samples[key].target)
            total += min(s.max_steps, max(s.min_steps, s.epochs * max(1, n // min(s.batch, n))))
        return total

    def _net_data(self, key: str) -> tuple[dict[str, torch.Tensor], int, int]:
        if self._data is None:
            self._data = _tensors(self.samples[key].arrays())
        n = self._data["target"].shape[0]
        return self._data, n, min(self.settings.batch, n)

    def _make_optimiser(self, key: str, steps: int) -> None:
        net = self.model.nets[key]
        self._opt = torch.optim.Adam(net.parameters(), lr=self.settings.lr)
        if steps:
            self._sched = torch.optim.lr_scheduler.OneCycleLR(
                self._opt, max_lr=self.settings.lr, total_steps=steps)

    def _start_net(self, key: str) -> None:
        """Warm up a few steps, fix the step count, build the schedule and the first permutation."""
        s = self.settings
        data, n, size = self._net_data(key)
        net = self.model.nets[key]
        self._make_optimiser(key, 0)
        opt = self._opt
        probe_start = time.perf_counter()
        for _ in range(3):  # time a few steps at a small learning rate (warm-up)
            for group in opt.param_groups:
                group["lr"] = s.lr / 25
            loss = _bits(net, data, torch.randint(0, n, (size,))).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            clamp_parameters(net)
        steps = min(s.max_steps, max(s.min_steps, s.epochs * max(1, n // size)))
        remaining = s.time_budget_s - self.elapsed()
        keys_left = len(self.keys) - self.net_index
        step_time = (time.perf_counter() - probe_start) / 3
        if steps * step_time > 2 * remaining / keys_left:  # far behind: shorten, keep schedule
            steps = max(50, int(remaining / keys_left / step_time))
        self._sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s.lr, total_steps=steps)
        self.steps = steps
        self.step = 0
        self._perm = torch.randperm(n)
        self._cursor = 0

    def run(self):
        """Train what is left, yielding a :class:`TrainEvent` after every step and network."""
        self._session_start = time.perf_counter()
        while not self.done:
            key = self.keys[self.net_index]
            if not self.steps:
                self._start_net(key)
            data, n, size = self._net_data(key)
            net = self.model.nets[key]
            while self.step < self.steps:
                if self._cursor + size > n:
                    self._perm, self._cursor = torch.randperm(n), 0
                idx = self._perm[self._cursor : self._cursor + size]
                self._cursor += size
                loss = _bits(net, data, idx).mean()
                self._opt.zero_grad()
                loss.backward()
                self._opt.step()
                clamp_parameters(net)
                if self.step < self.steps - 1:
                    self._sched.step()
                self.step += 1
                self.global_step += 1
                yield TrainEvent("step", key, self.global_step, self.step, self.steps,
                                 float(loss.detach()))
            with torch.no_grad():
                self.report[key] = float(_bits(net, data).mean())
            self.report[key + "_steps"] = self.steps
            self.net_index += 1
            self.steps = self.step = 0
            self._data = self._opt = self._sched = self._perm = None
            yield TrainEvent("net_done", key, self.global_step, 0, 0, self.report[key])
        self.report["seconds"] = self.elapsed()

    def state_dict(self) -> dict:
        """Everything needed to continue: tensors, numbers, strings (``torch.save``-able)."""
        state = {
            "model": self.model.state_dict(),
            "keys": list(self.keys),
            "net_index": self.net_index,
            "step": self.step,
            "steps": self.steps,
            "global_step": self.global_step,
            "report": dict(self.report),
            "elapsed": self.elapsed(),
            "rng": torch.get_rng_state(),
        }
        if self.steps:
            state.update(opt=self._opt.state_dict(), sched=self._sched.state_dict(),
                         perm=self._perm.clone(), cursor=self._cursor)
        return state

    def load_state_dict(self, state: dict) -> None:
        if list(state["keys"]) != self.keys:
            raise ValueError("checkpoint was taken on other training samples (networks differ)")
        self.model.load_state_dict(state["model"])
        self.net_index = int(state["net_index"])
        self.step = int(state["step"])
        self.steps = int(state["steps"])
        self.global_step = int(state["global_step"])
        self.report = dict(state["report"])
        self._elapsed = float(state["elapsed"])
        self._session_start = time.perf_counter()
        self._data = self._opt = self._sched = self._perm = None
        if self.steps:
            self._make_optimiser(self.keys[self.net_index], self.steps)
            self._opt.load_state_dict(state["opt"])
            self._sched.load_state_dict(state["sched"])
            self._perm = state["perm"].clone()
            self._cursor = int(state["cursor"])
        torch.set_rng_state(state["rng"])


def train_predictor(
    samples: dict[str, Samples],
    hidden: int = 32,
    depth: int = 2,
    epochs: int = 20,
    batch: int = 4096,
    lr: float = 3e-3,
    seed: int = 0,
    time_budget_s: float = 3600.0,
    model: NeuralPredictor | None = None,
    max_steps: int = 2000,
    min_steps: int = 0,
) -> tuple[NeuralPredictor, dict[str, float]]:
    """Fit every network with Adam on the logistic code length; returns (model, bits/pixel).

    Each network trains ``epochs`` passes (clamped to ``min_steps``..``max_steps`` steps, so
    networks with few samples still converge); only when a network
    would take more than twice its share of what is left of ``time_budget_s`` is it shortened.
    The one-cycle learning-rate schedule always spans exactly the steps taken, so a shortened
    run still anneals. (:class:`PredictorTrainer` is the same loop, resumable.)
    """
    settings = TrainSettings(hidden, depth, epochs, batch, lr, seed, time_budget_s, max_steps,
                             min_steps)
    trainer = PredictorTrainer(samples, settings, model)
    for _ in trainer.run():
        pass
    return trainer.model, trainer.report


def float_bits(model: NeuralPredictor, samples: Samples, key: str) -> float:
    """Mean logistic code length (bits/pixel) of ``samples`` under the float network ``key``."""
    with torch.no_grad():
        return float(_bits(model.nets[key], _tensors(samples.arrays())).mean())


def integer_predictions(weights: NeuralWeights, key: str, arrays: dict[str, np.ndarray],
                        tau: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(table key, shift, residual symbol t) per sample under the integer model, as the codec."""
    ctx = GroupContext(arrays["features"].T.astype(np.float32), arrays["mu0"].astype(np.int64),
                       arrays["s16"].astype(np.int64), arrays["log_s16"].astype(np.int64))
    mean, ls = weights.nets[key](ctx.features)
    maxval = arrays["maxval"].astype(np.int64)
    pred_q3 = np.clip(predicted_mean_q3(ctx, mean), 0, maxval << 3)
    base = (pred_q3 + 4) >> 3
    log_scale = predicted_log2_scale_q6(ctx, ls)
    r = arrays["target"].astype(np.int64) - base
    if tau:
        step = 2 * tau + 1
        log_scale -= int(ilog2_q6(np.array([step]))[0])
        phase = np.full(r.size, CENTRE_PHASE)
        t = np.sign(r) * ((np.abs(r) + tau) // step)
    else:
        phase = pred_q3 - (base << 3) + CENTRE_PHASE
        t = r
    k = scale_bin(log_scale)
    return table_key(k, phase), SHIFTS[k], t


def _coarse(t: np.ndarray, shift: np.ndarray) -> np.ndarray:
    c = (t >> shift) + HALF_RANGE
    return np.where((c < 0) | (c >= ESCAPE), ESCAPE, c)


def fit_tables(weights: NeuralWeights, samples: dict[str, Samples], prior_weight: float = 64.0,
               taus: tuple[int, ...] = (0,)) -> np.ndarray:
    """Count tables from the integer model's residuals on ``samples``, smoothed by the prior.

    Each table's histogram is mixed with the logistic prior carrying ``prior_weight`` pseudo
    samples, so rarely used bins stay close to the parametric shape.
    """
    hist = np.zeros((N_BINS * PHASES, ALPHABET), dtype=np.float64)
    for key, s in samples.items():
        if not s.target:
            continue
        arrays = s.arrays()
        for tau in taus:
            tkey, shift, t = integer_predictions(weights, key, arrays, tau)
            np.add.at(hist, (tkey, _coarse(t, shift)), 1.0)
    prior = logistic_counts().astype(np.float64)
    prior /= prior.sum(axis=1, keepdims=True)
    probs = (hist + prior_weight * prior) / (hist.sum(axis=1, keepdims=True) + prior_weight)
    return probabilities_to_counts(probs)


def estimated_bits(weights: NeuralWeights, arrays: dict[str, np.ndarray], key: str,
                   tau: int = 0) -> float:
    """Ideal code length (bits/pixel) of samples under the integer networks and count tables."""
    tkey, shift, t = integer_predictions(weights, key, arrays, tau)
    counts = weights.counts
    sym = _coarse(t, shift)
    p = counts[tkey, sym] / counts[tkey].sum(axis=1)
    bits = -np.log2(p) + np.where(sym == ESCAPE, 0.0, shift)
    escape_bits = np.log2(2.0) * (int(np.log2(arrays["maxval"].max() + 1)) + 1)
    bits = bits + np.where(sym == ESCAPE, escape_bits, 0.0)
    return float(bits.mean())


def build_weights(model: NeuralPredictor, samples: dict[str, Samples], meta: dict,
                  taus: tuple[int, ...] = (0,)) -> NeuralWeights:
    """Quantise, then fit the count tables to the quantised model's residuals."""
    weights = to_integer(model, logistic_counts(), meta)
    counts = fit_tables(weights, samples, taus=taus)
    return NeuralWeights(weights.nets, counts, meta)
