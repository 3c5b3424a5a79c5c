"""Envelope encryption of objects and the per-site keyring.

``envelope`` encrypts an object (a .fcz container, or any byte stream) under a fresh data key in
authenticated AES-256-GCM frames, wraps that data key for the site's key-encryption key and, when
shared, for peer sites' X25519 keys. ``keyring`` is the only code that reads key files. The byte
format is specified in ``docs/encryption-format.md``; ``tests/test_crypto_spec.py`` re-implements
that spec independently to keep the two in step.
"""
