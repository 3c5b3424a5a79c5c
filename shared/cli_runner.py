"""The one place both CLIs turn exceptions into a one-line error and an exit code.

Each CLI is a set of subcommand modules in a package; every module that defines
``register(subparsers)`` is found automatically, so adding a command never edits a shared list.
``register`` adds its parser and sets ``func`` to a callable taking the parsed args and returning
an exit code (or None for 0).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from types import ModuleType

from fedcodec.shared.errors import DataWarning, FedcodecError


def build_parser(prog: str, description: str, commands: ModuleType,
                 argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """A parser with one subcommand per module of ``commands`` that has ``register``.

    With ``argv`` whose command names a module (modules are named after the command they
    register), only that module is imported: each command module imports what its command needs
    (codecs, pydicom, scipy, torch), and importing all of them cost ~2 s before `fedcodec keys
    list` could print a line. Without a recognisable command (``--help``, a typo) every command
    is registered, so help and "invalid choice" list them all.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = sorted(info.name for info in pkgutil.iter_modules(commands.__path__))
    chosen = _command_in(argv, names)
    for name in [chosen] if chosen else names:
        module = importlib.import_module(f"{commands.__name__}.{name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def _command_in(argv: Sequence[str] | None, names: list[str]) -> str | None:
    """The command ``argv`` runs (its first word that is not an option), if a module has it."""
    if argv is None:
        return None
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in names else None


def run_cli(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse, dispatch, and map failures to one line on stderr and a non-zero exit."""
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("FEDCODEC_DEBUG") == "1"
    # the command's own warning display and SIGTERM handling, undone when it returns (a test
    # or an embedding program calls this in a process that lives on)
    with warnings.catch_warnings(), _sigterm_as(Terminated):
        said: list[str] = []
        if not debug:
            _one_line_warnings(parser.prog, said, quiet=bool(getattr(args, "quiet", False)))
        code = _dispatch(parser, args, debug)
    if code == 0:  # a failed command says one line: its error
        for line in said:
            print(line, file=sys.stderr)
    return code


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace, debug: bool) -> int:
    try:
        return int(args.func(args) or 0)
    except FedcodecError as exc:
        if debug:
            raise
        print(f"{parser.prog}: error: {_first_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        print(f"{parser.prog}: terminated", file=sys.stderr)
        return TERMINATED_EXIT
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _reader_went_away()
    except (OSError, ValueError, MemoryError) as exc:
        if debug:
            raise
        print(f"{parser.prog}: error: {type(exc).__name__}: {_first_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the last guard: a bug must not print a traceback
        if debug:
            raise
        print(
            f"{parser.prog}: internal error: {type(exc).__name__}: {_first_line(exc)} "
            "(a bug: please report it with the output of --debug)",
            file=sys.stderr,
        )
        return INTERNAL_ERROR_EXIT


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler's time limit, ``docker stop``), raised where the command
    is, so it unwinds as Ctrl-C does: temporary outputs removed, worker processes stopped."""


TERMINATED_EXIT = 143
"""128 + SIGTERM, what a shell reports for a process SIGTERM stopped."""


@contextlib.contextmanager
def _sigterm_as(exception: type[BaseException]) -> Iterator[None]:
    """While the block runs, SIGTERM raises ``exception`` in this process (a forked worker gets
    the default action back, so the pool can stop it); the previous handler afterwards."""
    parent = os.getpid()

    def handler(signum, frame) -> None:  # noqa: ARG001
        if os.getpid() != parent:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise exception

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (a test harness): leave SIGTERM alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _one_line_warnings(prog: str, said: list[str], *, quiet: bool) -> None:
    """Library warnings (pydicom's about a value longer than its VR allows, say) as one line
    each, once per message, instead of Python's two lines naming library source, collected in
    ``said`` to print after the command's output when it succeeds; none with ``--quiet`` except
    :class:`DataWarning`. ``--debug`` keeps Python's default."""
    warnings.simplefilter("ignore" if quiet else "once")
    warnings.simplefilter("once", DataWarning)  # about the user's data: shown even when quiet

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001
        text = f"{prog}: warning: {_first_line(Warning(message))}"
        if text not in said:
            said.append(text)

    warnings.showwarning = show


def _reader_went_away() -> int:
    """Output piped into ``head`` or a pager that quit: stop quietly, as ``cat`` would.

    Point stdout at /dev/null so the interpreter's final flush cannot raise again, and exit with
    the shell's code for SIGPIPE. Output files are never written through stdout, so nothing half
    written is left behind."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return SIGPIPE_EXIT


SIGPIPE_EXIT = 141
"""128 + SIGPIPE: what a shell reports for a writer whose reader closed the pipe."""

INTERNAL_ERROR_EXIT = 70
"""``EX_SOFTWARE``: an exception no check foresaw. Input checks raise FedcodecError instead;
the fuzz campaign counts this exit as a failure, so it never hides a missing check."""


MAX_ERROR_CHARS = 2000
"""Long enough for a message that names two deep paths (a key file and the ``chmod`` that fixes
it: a cut remedy is no remedy); short enough that a library's dump cannot flood the terminal."""


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message (pydicom messages span several lines)."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0]
    return line if len(line) <= MAX_ERROR_CHARS else line[:MAX_ERROR_CHARS] + " ..."
