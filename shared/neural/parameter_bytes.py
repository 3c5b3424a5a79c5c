"""The float parameters of the codec's networks as bytes, for a Flower config record.

The promotion gate sends each site the currently promoted model beside the round's candidate
(Flower carries one parameter set per message; config records carry scalars and bytes). Plain
``.npy`` arrays in an uncompressed ``.npz``, read with ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

from fedcodec.shared.errors import CorruptDataError


def arrays_to_bytes(arrays: list[np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{f"p{i:03d}": np.asarray(a, dtype=np.float32) for i, a in enumerate(arrays)})
    return buffer.getvalue()


def bytes_to_arrays(data: bytes) -> list[np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return [z[f"p{i:03d}"] for i in range(len(z.files))]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise CorruptDataError(f"model parameters in the round's config are unreadable: {exc}") from None
