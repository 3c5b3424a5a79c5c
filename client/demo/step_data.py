"""Demo step ``data``: the sites' DICOM folders and the de-identified demo study."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pydicom

from fedcodec.client.demo.context import OK, DemoContext, StepOutcome
from fedcodec.client.demo.embedded_sites import (
    DEMO_SITES,
    STUDY_SOURCE,
    copy_demo_study,
    write_site_folders,
)
from fedcodec.shared.crypto.keyring import METADATA_FILE, SiteKeyring
from fedcodec.shared.deid import deidentify_folder
from fedcodec.shared.dicom import read_series

FAKE_IDENTITY = {"PatientName": "Doe^Jane", "PatientID": "DEMO-0001",
                 "PatientBirthDate": "19700101", "InstitutionName": "Demo Hospital"}
"""A fictitious identity stamped on the demo study's copy (the embedded file has almost none),
so de-identification visibly has something to remove."""
SHOWN = ("PatientName", "PatientID", "PatientBirthDate", "InstitutionName", "StudyInstanceUID")
QUICK_SLICES = 8
STUDY_SITE = "site-c"
"""The site that holds the demo study (its data are the study's acquisition): it de-identifies
the study with its keyring and later stores it."""


def private_folder(path: Path) -> Path:
    """A folder only the owner can enter (keys live here)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def site_keyring(keys_dir: Path, site: str) -> SiteKeyring:
    """The demo keyring of ``site`` (created on first use, in a 0700 folder)."""
    path = private_folder(keys_dir) / site
    if (path / METADATA_FILE).exists():
        return SiteKeyring.open(path)
    return SiteKeyring.create(path, site)


def prepare_data(ctx: DemoContext) -> StepOutcome:
    """Write three site folders, copy the study, stamp a fake identity, de-identify it."""
    data = ctx.folder("data")
    sites = write_site_folders(data / "sites", max_slices=QUICK_SLICES if ctx.quick else None)
    original_dir = data / "study-original"
    shutil.rmtree(original_dir, ignore_errors=True)
    study_file = copy_demo_study(original_dir)
    ds = pydicom.dcmread(study_file)
    for keyword, value in FAKE_IDENTITY.items():
        setattr(ds, keyword, value)
    ds.save_as(study_file)
    before = {k: str(ds.get(k, "")) for k in SHOWN}

    deid_dir = data / "study-deid"
    shutil.rmtree(deid_dir, ignore_errors=True)
    keyring = site_keyring(ctx.out / "keys", STUDY_SITE)
    result = deidentify_folder(original_dir, deid_dir, uid_key=keyring.deid_key_bytes())
    after_ds = pydicom.dcmread(result.written[0])
    after = {k: str(after_ds.get(k, "")) for k in SHOWN}
    series, _ = read_series(deid_dir)
    ctx.results.update(sites=sites, study_dir=deid_dir, study_series=series)

    site_rows = []
    for site in DEMO_SITES:
        found, _ = read_series(sites[site.name])
        shape = "x".join(str(n) for n in found[0].volume.shape)
        site_rows.append(f"| {site.name} | {site.description} | {shape} |")
    section = [
        "Three simulated sites, each holding one embedded acquisition as DICOM "
        f"({'first ' + str(QUICK_SLICES) + ' slices, ' if ctx.quick else ''}stored values exact):",
        "", "| site | embedded source | slices x rows x cols |", "| --- | --- | --- |", *site_rows,
        "",
        f"Demo study: `{STUDY_SOURCE[1]}` from pydicom-data "
        f"({'x'.join(map(str, series[0].volume.shape))}), with a fictitious identity stamped on "
        "the copy, then de-identified (DICOM PS3.15 Basic Profile, keyed UID replacement, "
        f"key in {STUDY_SITE}'s keyring `keys/{STUDY_SITE}/`) before anything is compressed, "
        "encrypted or sent:",
        "", "| attribute | before | after |", "| --- | --- | --- |",
        *[f"| {k} | `{before[k]}` | `{after[k]}` |" for k in SHOWN],
        "", "De-identification actions: " + ", ".join(
            f"{a} x{n}" for a, n in sorted(result.report.actions.items())) + ".",
    ]
    changed = sum(before[k] != after[k] for k in SHOWN)
    return StepOutcome(
        OK, f"{len(sites)} sites, study {series[0].volume.shape[0]} slices, "
        f"{changed}/{len(SHOWN)} shown attributes changed by de-id",
        section, metrics={"sites": len(sites), "deid_actions": sum(result.report.actions.values())},
    )
