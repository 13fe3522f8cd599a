"""``gqa-retrofit`` entry point: discovers subcommands and maps errors to exit codes.

Exit codes: 0 success, 2 bad usage or input (one-line reason), 1 any other failure.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from typing import NoReturn

from .._progress import set_quiet
from .._version import __version__
from ..errors import GQARetrofitError


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser: usage errors are one line (and exit 2), as every user error is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# file-system errors a user causes and can fix (a path, a permission, a name): exit 2, one line
_USER_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENAMETOOLONG,
    errno.EISDIR,
    errno.ENOTDIR,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gqa-retrofit",
        description="Retrofit Hugging Face language models to decoupled-head grouped-query "
        "attention: estimate costs, patch, convert, train, recommend, publish.",
    )
    parser.add_argument("--version", action="version", version=f"gqa-retrofit {__version__}")
    _add_global_flags(parser, default=False)
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_CommandParser
    )
    package = importlib.import_module(__package__ or "gqa_retrofit.cli")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "main":
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    for sub in subparsers.choices.values():
        _add_global_flags(sub, default=argparse.SUPPRESS)  # also accepted after the command
    return parser


def _add_global_flags(parser: argparse.ArgumentParser, *, default: object) -> None:
    """``--debug`` and ``-q/--quiet``, before or after the subcommand."""
    group = parser.add_argument_group("global options")
    group.add_argument(
        "--debug", action="store_true", default=default, help="show tracebacks for all errors"
    )
    group.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        default=default,
        help="no progress bars (also transformers' and huggingface_hub's bars and logs)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.quiet:
        set_quiet(True)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("gqa-retrofit: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # last-resort boundary of the CLI
        if args.debug:
            raise
        print(f"gqa-retrofit {args.command}: {_describe(err)}", file=sys.stderr)
        return err.exit_code if isinstance(err, GQARetrofitError) else _exit_code(err)


def _exit_code(err: Exception) -> int:
    return 2 if isinstance(err, OSError) and err.errno in _USER_ERRNOS else 1


def _describe(err: Exception) -> str:
    """One line: ``error: ...`` for what the user can fix, ``failed: ...`` for the rest."""
    if isinstance(err, GQARetrofitError):
        return f"error: {err}"
    if _exit_code(err) == 2:
        assert isinstance(err, OSError)
        where = f": {str(err.filename)!r}" if err.filename else ""
        return f"error: {err.strerror or err}{where} (check the path and its permissions)"
    text = " ".join(str(err).split())  # one line, whatever the exception's own formatting
    return f"failed: {type(err).__name__}: {text} (rerun with --debug for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
