"""The storage service's audit trail and the `fedcodec-server audit` checks.

:mod:`.log` is the append-only, hash-chained log the servicer writes for every call (denied ones
too); :mod:`.report` verifies that chain, re-checks every stored object against the index and its
public envelope header, and builds the inventory (algorithms, key ids and ages, usage per site).
"""
