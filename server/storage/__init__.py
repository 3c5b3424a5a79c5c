"""The zero-knowledge storage service: ciphertext in, ciphertext out, every call audited.

The gRPC servicer (:mod:`.servicer`) is a thin adapter; the rules live in plain classes that tests
call directly: :class:`~.service.StorageService` (access control, size/hash checks, commit order),
:class:`~.backend.FilesystemBackend` (atomic files; :mod:`.s3_backend` for S3-compatible
buckets on boto3, :mod:`.replica_sync` for replicas sharing one), :class:`~.index.ObjectIndex`
(SQLite) and :func:`~.recovery.reconcile` (startup repair, run by :func:`~.root.open_storage`).
Per-site call quotas and the stall watchdog are :mod:`.call_guard`. See docs/storage-service.md.
"""
