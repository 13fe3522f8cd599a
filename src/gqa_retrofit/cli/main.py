"""``gqa-retrofit`` entry point: discovers subcommands and maps errors to exit codes.

Exit codes: 0 success, 2 bad usage or input (one-line reason), 1 any other failure.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from .._progress import set_quiet
from .._version import __version__
from ..errors import GQARetrofitError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gqa-retrofit",
        description="Retrofit Hugging Face language models to decoupled-head grouped-query "
        "attention: estimate costs, patch, convert, train, recommend, publish.",
    )
    parser.add_argument("--version", action="version", version=f"gqa-retrofit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for all errors")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    package = importlib.import_module(__package__ or "gqa_retrofit.cli")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "main":
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


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
    except GQARetrofitError as err:
        if args.debug:
            raise
        print(f"gqa-retrofit {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("gqa-retrofit: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # last-resort boundary of the CLI
        if args.debug:
            raise
        print(
            f"gqa-retrofit {args.command}: failed: {type(err).__name__}: {err} "
            "(rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
