"""Centralised training of the ``neural`` codec (``fedcodec train``): data, split, loop, records.

The command (``client/commands/train.py``) only parses arguments; everything here is a plain
function a test or an experiment script can call. The networks, sampling and resumable trainer
are the library's (:mod:`fedcodec.shared.neural.train`); this package adds what a training *run*
needs around them: a held-out split by series, checkpoints, MLflow, a curve and a summary.
"""
