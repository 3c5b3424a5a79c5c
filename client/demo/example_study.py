"""An example MR study to try fedcodec on: ``python -m fedcodec.client.demo.example_study DIR``.

Two series written as DICOM from MRI that ships with dipy (a 6-slice b=0 DWI as "T2 axial" and
a 3-slice anisotropic-voxel volume as "localizer"), one study UID, and the identity a PACS export
carries (a made-up patient name, ID, birth date and institution), so de-identification,
compression, storage and analysis can be tried without hospital data. The guides build their
``$STUDY`` with it; the tests use the same function.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

S0_10SLICES = ("dipy", "data/files/S0_10slices.nii.gz")
ANISO_VOX = ("dipy", "data/files/aniso_vox.nii.gz")
SERIES = {"t2": (S0_10SLICES, 6, "T2 axial", ["ORIGINAL", "PRIMARY", "M", "ND"]),
          "localizer": (ANISO_VOX, 3, "localizer", ["ORIGINAL", "PRIMARY", "LOCALIZER"])}


def write_example_study(folder: Path, *, burned_in: bool = False) -> Path:
    """Write the two-series study under ``folder`` (``t2/``, ``localizer/``); returns ``folder``.

    ``burned_in`` marks every image BurnedInAnnotation YES (what de-identification must refuse).
    """
    import pydicom

    from fedcodec.client.demo.embedded_sites import embedded_stack, write_stack_as_dicom

    study_uid = pydicom.uid.generate_uid()
    for name, (source, slices, description, image_type) in SERIES.items():
        files = write_stack_as_dicom(embedded_stack(*source), Path(folder) / name,
                                     patient_id="MRN-0042", description=description,
                                     max_slices=slices)
        for path in files:
            ds = pydicom.dcmread(path)
            ds.PatientName = "Doe^Jane"
            ds.PatientBirthDate = "19800101"
            ds.InstitutionName = "St Elsewhere Hospital"
            ds.StudyInstanceUID = study_uid
            ds.ImageType = image_type  # as scanners mark them
            if burned_in:
                ds.BurnedInAnnotation = "YES"
            ds.save_as(path, enforce_file_format=True)
    return Path(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fedcodec.client.demo.example_study",
        description="Write a two-series example MR study (DICOM, with a made-up identity).")
    parser.add_argument("folder", type=Path, help="folder to create (must not exist)")
    args = parser.parse_args(argv)
    if args.folder.exists():
        print(f"error: {args.folder} exists; choose a new folder", file=sys.stderr)
        return 2
    write_example_study(args.folder)
    slices = sum(s[1] for s in SERIES.values())
    print(f"wrote {args.folder}: 2 series (T2 axial, localizer), {slices} DICOM slices, "
          "patient Doe^Jane MRN-0042 (made up)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
