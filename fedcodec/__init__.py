"""fedcodec: federated, privacy-preserving compression for MRI.

The code lives in three top-level folders that the distribution maps under this package:
``shared/`` -> ``fedcodec.shared`` (the library both sides use), ``client/`` -> ``fedcodec.client``
(a hospital site) and ``server/`` -> ``fedcodec.server`` (coordinator and cloud).
"""

__version__ = "0.1.0"
