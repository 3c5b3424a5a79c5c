"""The library both sides use: codecs, entropy coding, container, DICOM I/O, crypto, metrics.

It imports neither ``fedcodec.client`` nor ``fedcodec.server`` (a test enforces it).
"""
