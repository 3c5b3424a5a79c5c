"""Bits outside Bits Stored (old files kept overlay planes there) are not pixel values: the
reader keeps the stored values and says, once, that decompressed files will have them cleared."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from fedcodec.shared.dicom.stored_values import stored_frames
from fedcodec.shared.errors import DataWarning


def _dataset(values: np.ndarray) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, generate_uid()
    ds.Rows, ds.Columns = values.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = values.astype("<u2").tobytes()
    return ds


@pytest.mark.parametrize("high", [False, True])
def test_bits_above_high_bit_are_cleared_and_reported(high: bool) -> None:
    values = np.arange(16, dtype=np.uint16).reshape(4, 4) * 200
    if high:
        values[0, 0] |= 0xF000  # an overlay plane's bits above High Bit 11
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = stored_frames(_dataset(values))
    assert np.array_equal(frames[0], values & 0x0FFF)
    said = [w for w in caught if issubclass(w.category, DataWarning)]
    assert len(said) == int(high)
    if high:
        assert "bits outside Bits Stored" in str(said[0].message)
