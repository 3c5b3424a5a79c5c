"""Subcommands of ``fedcodec-server``: each module with ``register(subparsers)`` is one command."""
