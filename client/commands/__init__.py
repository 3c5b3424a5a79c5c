"""Subcommands of ``fedcodec``: each module with ``register(subparsers)`` is one command."""
