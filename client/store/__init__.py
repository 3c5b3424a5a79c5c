"""The site side of the storage service: encrypt, upload, download, decrypt.

:class:`~.connection.StoreClient` speaks the gRPC protocol over mutual TLS and turns every
failure into a one-line :class:`~fedcodec.shared.errors.FedcodecError`; :mod:`.transfer` adds the
envelope encryption (keys never leave the site: the service only ever sees ciphertext).
"""
