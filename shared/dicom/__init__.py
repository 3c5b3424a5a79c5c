"""DICOM I/O: read a folder into series (volumes + every header), write a series back."""
