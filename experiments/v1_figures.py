"""Pin the ``neural`` codec's default model to ``neural_v1`` for the experiments whose figures in
the README and docs were measured with it.

``neural_v1`` (the default until 2026-12-07) was trained on ``../shared/data/dicom`` only, so
``dicom-more`` and the PyPI MR are data it never saw: these experiments measure on them. The
newer default, ``neural_v2``, was trained on all 13 sources and cannot be measured there (the
leave-one-source-out fold models can: ``neural_loso.py``, ``neural_adapt.py --folds``). Set
``FEDCODEC_NEURAL_WEIGHTS`` yourself to measure another model.
"""

import os

os.environ.setdefault("FEDCODEC_NEURAL_WEIGHTS", "neural_v1")
