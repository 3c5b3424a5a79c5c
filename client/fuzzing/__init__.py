"""Seeded fuzzing of everything fedcodec reads from a user: containers, DICOM files.

``campaign.run_campaign`` mutates seed inputs (random damage, and *crafted* damage with every CRC
recomputed) and feeds them to the CLI entry function in this process (``decompress``,
``inspect``, ``inspect --verify``, ``compress``, ``deid``), then sorts each run into an outcome:
a clean one-line rejection, a correct acceptance, or a failure (traceback, unexpected internal
error, messy error output, partial output left behind, or a silent wrong output). The suite runs a
short campaign (``tests/test_fuzz_inputs.py``); ``experiments/fuzz_inputs.py`` runs long ones.
"""
