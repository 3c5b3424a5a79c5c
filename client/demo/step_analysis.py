"""Demo step ``analysis``: classify the study from its compressed latents, features encrypted.

The site entropy-decodes the ``neural-lossy`` container's latents (no pixels), pools each slice
to a feature vector, encrypts the vectors with CKKS and sends them to the analysis service
(``fedcodec-server analysis``, started for this step, mutual TLS); the service evaluates the head
on ciphertexts and returns encrypted scores that only the site can decrypt. The same head is then
evaluated in plaintext on the same features: the report shows how well the two agree and what
the encrypted path costs.

Which head: ``--analysis-model DIR`` (a folder from ``fedcodec analyze train``, e.g. the tumour
classifier) or, by default, a toy head fitted here on the embedded acquisitions' latents, whose
label is which acquisition a slice comes from. The embedded MRI has no diagnostic labels; the toy
task exists to exercise the encrypted path end to end, and the report says so.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
from fedcodec.client.analysis.remote import AnalysisClient, EncryptedClassifier
from fedcodec.client.analysis.site import series_vote, study_features
from fedcodec.client.analysis.training import HeadBudget, fit_head
from fedcodec.client.demo.context import OK, DemoContext, StepOutcome
from fedcodec.client.demo.embedded_sites import DEMO_SITES, embedded_stack
from fedcodec.client.demo.plots import plot_analysis
from fedcodec.client.demo.services import ServiceProcess, make_demo_pki
from fedcodec.client.demo.step_storage import OWNER
from fedcodec.shared.analysis.heads import HEAD_KINDS, LINEAR, head_path, load_head
from fedcodec.shared.analysis.latents import latent_extractor
from fedcodec.shared.analysis.pooling import CHANNEL_MEAN_ABSMEAN, pool_latents
from fedcodec.shared.errors import FedcodecError
from rich.progress import track

LATENT_CODEC = "neural-lossy"
QUICK_SLICES_PER_CLASS = 4


def heads_to_run(ctx: DemoContext) -> tuple[str, ...]:
    """Both heads; ``--quick`` only the linear one (the square MLP costs ~4x more)."""
    return (LINEAR,) if ctx.quick else tuple(HEAD_KINDS)


def train_toy_heads(ctx: DemoContext, model_dir: Path) -> tuple[list[str], dict[str, float]]:
    """Fit both heads on pooled latents of the sites' acquisitions; label = acquisition."""
    extractor = latent_extractor(LATENT_CODEC)
    identity = extractor.identity()
    features, labels = [], []
    per_class = QUICK_SLICES_PER_CLASS if ctx.quick else None
    work = []
    for label, site in enumerate(DEMO_SITES):
        stack = embedded_stack(site.package, site.relative_path)
        volume, _ = stack.codec_volume()
        work += [(label, image, stack.bits) for image in volume[:per_class]]
    for label, image, bits in track(work, description="latents of embedded slices",
                                    console=ctx.console, disable=not ctx.config.progress,
                                    transient=True):
        latents = extractor.latents(extractor.encode(np.ascontiguousarray(image), bits))
        features.append(pool_latents(latents))
        labels.append(label)
    x, y = np.stack(features), np.asarray(labels)
    train, val = np.arange(len(y)) % 2 == 0, np.arange(len(y)) % 2 == 1
    classes = tuple(site.description.split(" (")[0] for site in DEMO_SITES)
    accuracy = {}
    budget = HeadBudget(epochs=150 if ctx.quick else 400)
    shutil.rmtree(model_dir, ignore_errors=True)  # no head of an earlier run is served
    model_dir.mkdir(parents=True)
    for kind in heads_to_run(ctx):
        head = fit_head(kind, x[train], y[train], x[val], y[val], class_names=classes,
                        pooling=CHANNEL_MEAN_ABSMEAN, latent_codec=identity["spec"],
                        latent_model_hash=identity.get("model_hash") or "", budget=budget)
        head.save(head_path(model_dir, kind))
        accuracy[kind] = float((head.plain_scores(x[val]).argmax(1) == y[val]).mean())
    return list(classes), {**accuracy, "train_slices": int(train.sum()),
                           "val_slices": int(val.sum())}


def analyse_encrypted(ctx: DemoContext) -> StepOutcome:
    fcz: Path | None = ctx.results.get("lossy_fcz")
    if fcz is None:
        raise FedcodecError("no neural-lossy container of the study (compress step)")
    model_dir = ctx.config.analysis_model
    toy = model_dir is None
    training: dict[str, float] = {}
    if toy:
        model_dir = ctx.out / "analysis" / "model"
        _, training = train_toy_heads(ctx, model_dir)
    tls = ctx.results.get("tls") or make_demo_pki(ctx.out / "pki", [s.name for s in DEMO_SITES])
    service = ServiceProcess("analysis", ["analysis", "--model", str(model_dir), "--tls-dir",
                                          str(tls["server"]), "--port", "0"],
                             ctx.out / "logs" / "analysis.log")
    rows, plots, results = [], [], {}
    names: list[str] = []
    with service:
        ctx.results.setdefault("services", []).append(service)
        ctx.console.print(f"analysis service (pid {service.pid}) on {service.address}, "
                          "mutual TLS, public CKKS context only")
        with AnalysisClient(service.address, tls[OWNER]) as client:
            for kind in heads_to_run(ctx):
                if not head_path(model_dir, kind).exists():
                    continue
                start = time.perf_counter()
                session = EncryptedClassifier(client, kind)
                setup_ms = (time.perf_counter() - start) * 1000
                series = study_features(fcz, session.card.latent_codec)
                features = np.concatenate([f for _, _, f in series])
                start = time.perf_counter()
                encrypted = session.scores(features)
                total_ms = (time.perf_counter() - start) * 1000
                head = load_head(head_path(model_dir, kind))
                start = time.perf_counter()
                plain = head.plain_scores(features)
                plain_ms = (time.perf_counter() - start) * 1000
                agree = float((plain.argmax(1) == encrypted.argmax(1)).mean())
                error = float(np.max(np.abs(plain - encrypted)))
                names = list(session.card.class_names)
                votes = [names[i] for i in encrypted.argmax(1)]
                label = names[series_vote(encrypted.argmax(1), encrypted.mean(axis=0))]
                results[kind] = {"agreement": agree, "max_abs_diff": error, "ms": total_ms}
                rows.append(f"| {kind} | {len(features)} | {label} "
                            f"({votes.count(label)}/{len(votes)} slices) | {agree:.3f} | "
                            f"{error:.2e} | {session.stats.encrypt_ms:.0f} / "
                            f"{session.stats.server_evaluate_ms:.0f} / "
                            f"{session.stats.decrypt_ms:.0f} | {total_ms:.0f} | {plain_ms:.2f} | "
                            f"{session.stats.context_bytes / 1e6:.2f} MB + "
                            f"{session.stats.bytes_sent / 1e6:.2f} MB | {setup_ms:.0f} |")
                if kind == LINEAR or not plots:
                    plots = [plot_analysis(plain.tolist(), encrypted.tolist(), names,
                                           ctx.folder("report") / "analysis_agreement.png")]
    ctx.console.print(f"analysis service stopped (pid {service.pid})")
    if not rows:
        raise FedcodecError(f"no head in {model_dir}")
    task = ("**toy task**: which embedded acquisition a slice comes from (the study's own "
            "acquisition, emri_small, is one of the classes); heads fitted here on the "
            f"`{LATENT_CODEC}` latents of even slices, plaintext validation accuracy on odd "
            "slices: " + ", ".join(f"{k} {training[k]:.2f}" for k in HEAD_KINDS if k in training)
            + ". The embedded MRI carries no diagnostic labels; the point is the encrypted path."
            if toy else f"heads from `{model_dir}` (classes: {', '.join(names)}); the demo study "
            "has no ground-truth label for them, so only agreement and cost are measured here")
    section = [
        f"`{fcz.name}`: latents entropy-decoded at the site (no pixels), pooled per slice "
        "(channel mean + mean |.|), CKKS-encrypted (TenSEAL) and classified by the analysis "
        f"service on ciphertexts; scores decrypted and checked at the site. Head: {task}", "",
        "| head | slices | study label (encrypted) | argmax agreement with plaintext | "
        "max abs score diff | encrypt / server / decrypt ms | encrypted total ms | "
        "plaintext ms | sent: public context + ciphertexts | session setup ms |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", *rows,
    ]
    summary = "; ".join(f"{k}: agreement {v['agreement']:.2f}, |Δ| {v['max_abs_diff']:.1e}, "
                        f"{v['ms']:.0f} ms" for k, v in results.items())
    metrics = {f"{k}_{m}": v for k, r in results.items() for m, v in r.items()}
    return StepOutcome(OK, summary, section, plots, metrics)
