"""One regime for option dataclasses: declared once, read from flags, YAML/JSON files and mappings.

An options class is a dataclass that derives from :class:`Options` and declares each field with
:func:`option` (help text, choices, bounds, flag name). From that one declaration come

* the command-line flags (:meth:`Options.add_arguments`; argparse types, ``nargs``, choices and
  the ``(default: ...)`` help are derived from the field's type and default),
* the mapping and config-file readers (:meth:`Options.from_dict`, :meth:`Options.from_args`
  with ``--config FILE``; keys use ``_`` or ``-``), and
* the generic value checks (:meth:`Options.check_fields`: types, choices, bounds), which each
  class's ``validate()`` extends with its cross-field rules.

A field that should read the same in several commands is declared once and reused with
:func:`same_as`, so ``--eval-windows`` means one thing with one help text everywhere. Old flag
and key names stay accepted as hidden ``aliases`` that print a one-line notice.

Precedence: field defaults < the ``--config`` file < flags given on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ._progress import notice
from .errors import ConfigError, GQARetrofitError

T = TypeVar("T", bound="Options")

_NO_DEFAULT_SHOWN = (None, "", False)


def option(
    default: Any = MISSING,
    help: str = "",
    *,
    default_factory: Callable[[], Any] | Any = MISSING,
    flag: str | None = None,
    aliases: Sequence[str] = (),
    short: str | None = None,
    positional: bool = False,
    choices: Sequence[Any] | None = None,
    parse: Callable[[str], Any] | None = None,
    metavar: str | None = None,
    nargs: str | None = None,
    const: Any = None,
    minimum: float | None = None,
    maximum: float | None = None,
    must: str | None = None,
    cli: bool = True,
    recorded: bool = True,
    shown_default: str | None = None,
    nested: bool = False,
) -> Any:
    """Declare one option field (use as the dataclass field's default).

    Args:
        default: the value when nothing sets it (or use ``default_factory`` for lists/dicts).
        help: one line for ``--help``, the docs and error messages.
        flag: the flag and canonical key (dashes), when it differs from the field name.
        aliases: older flag/key names still accepted (hidden from ``--help``, with a notice).
        short: a one-letter flag (``"-o"``).
        positional: a positional argument (``nargs="?"``: a config file may supply it).
        choices: the valid values.
        parse: argparse ``type`` callable (default: from the field's type); for a list field a
            ``parse`` that returns the whole list (e.g. ``2k,8k``).
        metavar, nargs, const: passed to argparse (``nargs`` defaults to ``+`` for lists).
        minimum, maximum: inclusive bounds checked by :meth:`Options.check_fields`.
        must: the wording of the bound in errors (default: ``must be >= minimum``...).
        cli: False for options only a config file or the Python API can set.
        recorded: False for run controls (``overwrite``, ``dry_run``) that are not part of what
            a run's recorded options compare.
        shown_default: text for ``(default: ...)`` in the help instead of the value.
        nested: the field holds another options dataclass (give ``default_factory``); its
            fields become flags and keys of this class (e.g. the data loader's options).
    """
    metadata = {
        "help": help,
        "flag": flag,
        "aliases": tuple(aliases),
        "short": short,
        "positional": positional,
        "choices": tuple(choices) if choices is not None else None,
        "parse": parse,
        "metavar": metavar,
        "nargs": nargs,
        "const": const,
        "minimum": minimum,
        "maximum": maximum,
        "must": must,
        "cli": cli,
        "recorded": recorded,
        "shown_default": shown_default,
        "nested": nested,
    }
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def same_as(cls: type, name: str, **changes: Any) -> Any:
    """Reuse the declaration of option ``name`` of ``cls`` (``changes`` override its metadata).

    ``default`` / ``default_factory`` in ``changes`` replace the default.
    """
    source = next((f for f in fields(cls) if f.name == name), None)
    if source is None:
        raise AttributeError(f"{cls.__name__} declares no option {name!r}")
    metadata = {**source.metadata, **{k: v for k, v in changes.items() if k not in _DEFAULTS}}
    if "choices" in changes and changes["choices"] is not None:
        metadata["choices"] = tuple(changes["choices"])
    if "aliases" in changes:
        metadata["aliases"] = tuple(changes["aliases"])
    if "default_factory" in changes:
        return dataclasses.field(default_factory=changes["default_factory"], metadata=metadata)
    if "default" in changes:
        return dataclasses.field(default=changes["default"], metadata=metadata)
    if source.default_factory is not MISSING:
        return dataclasses.field(default_factory=source.default_factory, metadata=metadata)
    return dataclasses.field(default=source.default, metadata=metadata)


_DEFAULTS = ("default", "default_factory")


def flag_name(f: dataclasses.Field[Any]) -> str:
    """The canonical flag of a field, without dashes in front (``train-steps``)."""
    return str(f.metadata.get("flag") or f.name.replace("_", "-"))


def _key(text: str) -> str:
    return str(text).replace("-", "_")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_of(cls: type, f: dataclasses.Field[Any]) -> tuple[Any, bool]:
    """The field's type without ``None`` and whether it is a list."""
    hint = _hints(cls)[f.name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else hint
    if typing.get_origin(hint) is list:
        inner = typing.get_args(hint)
        return (inner[0] if inner else str), True
    return hint, False


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def read_config_file(path: str | Path, *, error: type[GQARetrofitError]) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or JSON file holding a mapping of option values.

    Raises:
        error: the file is missing, cannot be parsed, or does not hold a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"config file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text)
        else:
            values = json.loads(text)
    except Exception as err:  # yaml.YAMLError, json.JSONDecodeError
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise error(f"config file {str(path)!r} cannot be parsed: {reason}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise error(f"config file {str(path)!r} must hold a mapping of option names to values")
    return values


def _notice(old: str, new: str) -> None:
    notice(f"{old} is a deprecated name; use {new}")


# -------------------------------------------------------------------- shared checks
def check_output_path(out: str | Path, *, what: str = "OUT") -> None:
    """Refuse an output path that cannot be written, before any work starts.

    Raises:
        ConfigError: a name is too long for the file system, a parent is a file, or the nearest
            existing parent is read-only.
    """
    path = Path(out).absolute()
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{what} {str(out)!r} is invalid: {str(ancestor)!r} is not a directory")
    try:
        name_max = int(os.pathconf(ancestor, "PC_NAME_MAX"))
    except (OSError, ValueError):
        name_max = 255
    for part in path.relative_to(ancestor).parts:
        size = len(part.encode("utf-8"))
        if size > name_max:
            raise ConfigError(
                f"{what} name {part[:24] + '...'!r} is {size} bytes long: the file system "
                f"allows at most {name_max}"
            )
    read_only = bool(os.statvfs(ancestor).f_flag & os.ST_RDONLY)
    if read_only or not os.access(ancestor, os.W_OK | os.X_OK):
        reason = "is on a read-only file system" if read_only else "is not writable"
        raise ConfigError(f"{what} {str(out)!r} cannot be written: {str(ancestor)!r} {reason}")


def check_int_argument(name: str, value: Any, *, minimum: int = 1) -> int:
    """An integer argument of a Python API call (not a bool), at least ``minimum``.

    The options classes check their fields with :meth:`Options.check_fields`; this is the same
    check for the library functions that take plain arguments.

    Raises:
        ConfigError: ``name=value is invalid: must be an integer >= minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}={value!r} is invalid: must be an integer >= {minimum}")
    return value


# -------------------------------------------------------------------- shared value parsers
def dtype_value(text: str) -> str:
    """Parse a ``--dtype`` in the one vocabulary (:mod:`gqa_retrofit.devices`).

    Returns the canonical name: ``bf16`` and ``bfloat16`` alike, ``auto`` (also ``keep``) for
    the checkpoint's own dtype. An unknown name is returned as given, for the field's
    ``choices`` to refuse with the values valid there.
    """
    from .devices import dtype_name

    if str(text).strip().lower() == "keep":
        return "auto"
    try:
        return dtype_name(text, allow_auto=True)
    except ConfigError:
        return text


_SIZE_SUFFIX = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def device_value(text: str) -> str:
    """Parse a ``--device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``).

    Raises:
        argparse.ArgumentTypeError: any other word (the message lists the valid ones).
    """
    from .devices import DEVICE_CHOICES

    value = str(text).strip().lower()
    if value in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", value):
        return value
    raise argparse.ArgumentTypeError(
        f"unknown device {text!r}: valid are {', '.join(DEVICE_CHOICES)}"
    )


def context_length(text: str) -> int:
    """Parse a context length such as ``4096``, ``4k``, ``32K``, ``128k``, ``1m`` (k = 1024)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"invalid context length {text!r}: use a positive integer, optionally with k or m "
            "(e.g. 4096, 32k, 128K)"
        )
    value = int(match.group(1)) * _SIZE_SUFFIX[match.group(2).lower()]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid context length {text!r}: must be positive")
    return value


def context_list(text: str) -> list[int]:
    """Parse a comma-separated list of context lengths."""
    return [context_length(part) for part in text.split(",") if part.strip()]


class _DeprecatedAlias(argparse.Action):
    """A hidden old flag: stores like the canonical one and prints a one-line notice."""

    def __init__(self, *args: Any, canonical: str, extend: bool, **kwargs: Any) -> None:
        self.canonical = canonical
        self.extend = extend
        super().__init__(*args, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        _notice(str(option_string), self.canonical)
        if self.nargs == 0:
            values = self.const
        if self.extend:
            values = [*(getattr(namespace, self.dest, None) or []), *values]
        setattr(namespace, self.dest, values)


class Options:
    """Mixin of option dataclasses (see the module docstring).

    Subclasses set ``label`` (used in messages: "unknown convert option 'x'") and ``error``
    (the exception raised for bad values).
    """

    label: ClassVar[str] = ""
    error: ClassVar[type[GQARetrofitError]] = ConfigError

    # -------------------------------------------------------------------- declaration
    @classmethod
    def option_fields(cls) -> list[dataclasses.Field[Any]]:
        return list(fields(cls))  # type: ignore[arg-type]

    @classmethod
    def _flat_fields(cls) -> list[tuple[type, dataclasses.Field[Any], str | None]]:
        """``(owner class, field, nested field name or None)``: nested options spelled out."""
        flat: list[tuple[type, dataclasses.Field[Any], str | None]] = []
        for f in cls.option_fields():
            inner = _nested_class(cls, f)
            if inner is None:
                flat.append((cls, f, None))
            else:
                flat.extend((inner, sub, f.name) for sub in fields(inner))
        return flat

    @classmethod
    def _names(cls) -> dict[str, tuple[str | None, str]]:
        """Every accepted key (field/flag names, aliases; underscores) -> (nested, field)."""
        names: dict[str, tuple[str | None, str]] = {}
        for f in cls.option_fields():
            if _nested_class(cls, f) is not None:
                names[f.name] = (f.name, "")  # the nested options as one mapping
        for _, f, nested in cls._flat_fields():
            keys = {f.name, _key(flag_name(f)), *map(_key, f.metadata.get("aliases", ()))}
            for key in keys:
                if names.setdefault(key, (nested, f.name)) != (nested, f.name):
                    raise TypeError(f"{cls.__name__}: {key!r} names two options")
        return names

    # -------------------------------------------------------------------- mappings
    @classmethod
    def _what(cls) -> str:
        return f"{cls.label} option" if cls.label else "option"

    @classmethod
    def from_dict(cls: type[T], values: Mapping[str, Any]) -> T:
        """Build options from a mapping whose keys are field or flag names (``_`` or ``-``).

        Scalars given for list options are wrapped in a list. Old names (aliases) are accepted
        with a notice on stderr. The fields of nested options may be given at the top level
        or as a mapping under the nested field's name.

        Raises:
            error: an unknown key (the message lists the valid ones) or a value of a wrong type
                that the dataclass itself refuses.
        """
        names = cls._names()
        owners = {(n, f.name): (owner, f) for owner, f, n in cls._flat_fields()}
        clean: dict[str, Any] = {}
        nested_values: dict[str, dict[str, Any]] = {}
        for key, value in values.items():
            where = names.get(_key(key))
            if where is None:
                valid = ", ".join(sorted({flag_name(f) for _, f, _ in cls._flat_fields()}))
                raise cls.error(f"unknown {cls._what()} {key!r}; valid: {valid}")
            nested, name = where
            if nested is not None and not name:  # a mapping (or instance) of nested options
                if isinstance(value, Mapping):
                    for sub_key, sub_value in value.items():
                        sub = names.get(_key(sub_key))
                        if sub is None or sub[0] != nested:
                            raise cls.error(f"unknown {cls._what()} {nested}.{sub_key}")
                        nested_values.setdefault(nested, {})[sub[1]] = sub_value
                else:
                    clean[nested] = value
                continue
            owner, f = owners[(nested, name)]
            canonical = flag_name(f)
            if _key(key) not in (name, _key(canonical)):
                _notice(repr(str(key)), repr(canonical))
            _, is_list = _type_of(owner, f)
            if is_list and isinstance(value, (str, int, float)):
                value = [value]
            if nested is None:
                clean[name] = value
            else:
                nested_values.setdefault(nested, {})[name] = value
        for nested, sub_values in nested_values.items():
            inner = _nested_class(cls, next(f for f in cls.option_fields() if f.name == nested))
            assert inner is not None
            clean[nested] = inner(**sub_values)
        return cls(**clean)

    @classmethod
    def from_file(cls: type[T], path: str | Path, **overrides: Any) -> T:
        """Options from a YAML/JSON file; ``overrides`` that are not None win over the file.

        Raises:
            error: the file is missing, unparsable, not a mapping, or has unknown keys.
        """
        values = read_config_file(path, error=cls.error)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        """Every option by field name (JSON-able when the values are)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def recorded(self) -> dict[str, Any]:
        """The options that define the result of a run (run controls left out)."""
        keep = {f.name for f in self.option_fields() if f.metadata.get("recorded", True)}
        return {k: v for k, v in self.to_dict().items() if k in keep}

    def to_argv(self, *, recorded_only: bool = True) -> list[str]:
        """The command-line arguments that rebuild these options (defaults left out).

        Options without a flag (``cli=False``) and, with ``recorded_only``, run controls
        (``overwrite``, ``dry_run``) are left out.
        """
        positional: list[str] = []
        flags: list[str] = []
        for owner_value, f in self._values_and_fields():
            value, default = owner_value
            meta = f.metadata
            if not meta.get("cli", True) or (recorded_only and not meta.get("recorded", True)):
                continue
            if meta.get("positional"):
                positional.append(str(value))
                continue
            if value == default or value is None:
                continue
            flag = f"--{flag_name(f)}"
            if isinstance(value, bool):
                flags.append(flag if value else f"--no-{flag_name(f)}")
            elif isinstance(value, list):
                items = [str(v) for v in value]
                flags += [flag, ",".join(items)] if meta.get("parse") else [flag, *items]
            else:
                flags += [flag, str(value)]
        return positional + flags

    def _values_and_fields(self) -> list[tuple[tuple[Any, Any], dataclasses.Field[Any]]]:
        """``((value, default), field)`` of every option, nested options spelled out."""
        rows = []
        for _owner, f, nested in self._flat_fields():
            holder = getattr(self, nested) if nested else self
            rows.append(((getattr(holder, f.name), _default(f)), f))
        return rows

    # -------------------------------------------------------------------- checks
    def check_fields(self: T) -> T:
        """Check every value against its declared type, choices and bounds; return self.

        String values of fields with a ``parse`` are normalised by it first (``bfloat16`` is
        stored as ``bf16``), so a config file accepts what the flag accepts.

        Raises:
            error: the first bad value: ``--flag VALUE is invalid: what is valid``.
        """
        for f in self.option_fields():
            value = getattr(self, f.name)
            if _nested_class(type(self), f) is not None:
                if isinstance(value, Options):
                    value.check_fields()
                continue
            kind, is_list = _type_of(type(self), f)
            parse = f.metadata.get("parse")
            if parse is not None and kind is str and isinstance(value, str):
                try:  # the same spelling rules as the flag (e.g. bfloat16 -> bf16)
                    value = parse(value)
                except argparse.ArgumentTypeError as err:
                    raise self.error(f"--{flag_name(f)} {value!r} is invalid: {err}") from None
                object.__setattr__(self, f.name, value)
            values = value if is_list else [value]
            if is_list and not isinstance(value, list):
                self._bad(f, value, "must be a list")
            for item in values:
                if item is None and not is_list:
                    continue
                self._check_value(f, kind, item)
        return self

    def _check_value(self, f: dataclasses.Field[Any], kind: Any, value: Any) -> None:
        meta = f.metadata
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            self._bad(f, value, "must be an integer")
        if kind is float and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            self._bad(f, value, "must be a finite number")
        if kind is str and not isinstance(value, str):
            self._bad(f, value, "must be a string")
        if kind is bool and not isinstance(value, bool):
            self._bad(f, value, "must be true or false")
        choices = meta.get("choices")
        if choices is not None and value not in choices:
            self._bad(f, value, "choose one of " + ", ".join(str(c) for c in choices))
        low, high = meta.get("minimum"), meta.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            if meta.get("must"):
                wording = str(meta["must"])
            elif high is None:
                wording = f"must be >= {low}"
            elif low is None:
                wording = f"must be <= {high}"
            else:
                wording = f"must be in [{low}, {high}]"
            self._bad(f, value, wording)

    def _bad(self, f: dataclasses.Field[Any], value: Any, wording: str) -> typing.NoReturn:
        name = flag_name(f)
        shown = name.upper() if f.metadata.get("positional") else f"--{name}"
        raise self.error(f"{shown} {value!r} is invalid: {wording}")

    # -------------------------------------------------------------------- argparse
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, *, config: bool = True) -> None:
        """Add one flag per option (and ``--config FILE``) to ``parser``.

        Every flag defaults to "not given" (``argparse.SUPPRESS``), so :meth:`from_args` can
        tell a flag from a default and let flags win over the config file.
        """
        for owner, f, _ in cls._flat_fields():
            if f.metadata.get("cli", True):
                _add_argument(parser, owner, f)
        if config:
            parser.add_argument(
                "--config",
                metavar="FILE",
                default=argparse.SUPPRESS,
                help="YAML or JSON file of these options (keys as the flags, with - or _); "
                "flags given here override it",
            )

    @classmethod
    def from_args(cls: type[T], args: argparse.Namespace) -> T:
        """Merge the ``--config`` file (if given) with the flags given (flags win).

        Raises:
            error: the config file is bad or has unknown keys.
        """
        values: dict[str, Any] = {}
        config = getattr(args, "config", None)
        if config:
            values.update(read_config_file(config, error=cls.error))
        names = cls._names()
        given = {
            name: value
            for name, value in vars(args).items()
            if name in names and names[name][1] == name
        }
        # a flag and a config key for the same option: the flag wins, whatever name the file used
        for key in list(values):
            if names.get(_key(key), (None, ""))[1] in given:
                del values[key]
        values.update(given)
        return cls.from_dict(values)


def _nested_class(cls: type, f: dataclasses.Field[Any]) -> type | None:
    """The dataclass of a field declared with ``nested=True`` (None for plain fields)."""
    if not f.metadata.get("nested"):
        return None
    kind, _ = _type_of(cls, f)
    if not dataclasses.is_dataclass(kind):
        raise TypeError(f"{cls.__name__}.{f.name}: nested options must be a dataclass")
    return kind  # type: ignore[return-value]


def _add_argument(parser: argparse.ArgumentParser, cls: type, f: dataclasses.Field[Any]) -> None:
    """One flag (plus hidden aliases) for field ``f`` of ``cls``."""
    meta = f.metadata
    kind, is_list = _type_of(cls, f)
    default = _default(f)
    help_text = str(meta.get("help", ""))
    if meta.get("positional"):
        parser.add_argument(
            f.name,
            metavar=meta.get("metavar") or flag_name(f).upper().replace("-", "_"),
            nargs="?",
            default=argparse.SUPPRESS,
            help=help_text,
        )
        return
    kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
    if kind is bool and not is_list:
        kwargs.update(action="store_true" if default is not True else "store_false")
        flag = flag_name(f) if default is not True else f"no-{flag_name(f)}"
    else:
        flag = flag_name(f)
        parse = meta.get("parse")
        kwargs["type"] = parse or (kind if kind in (int, float) else str)
        if meta.get("choices") is not None:
            kwargs["choices"] = meta["choices"]
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if is_list and not parse:
            kwargs.update(nargs=meta.get("nargs") or "+", action="extend")
        elif meta.get("nargs"):
            kwargs["nargs"] = meta["nargs"]
        if meta.get("const") is not None:
            kwargs["const"] = meta["const"]
        shown = meta.get("shown_default")
        if shown is None and default not in _NO_DEFAULT_SHOWN and default != []:
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
        if shown is not None:
            help_text = f"{help_text} (default: {shown})"
    strings = [f"--{flag}"] + ([meta["short"]] if meta.get("short") else [])
    parser.add_argument(*strings, help=help_text, **kwargs)
    for alias in meta.get("aliases", ()):
        alias_kwargs = {k: v for k, v in kwargs.items() if k not in ("action", "metavar")}
        if kwargs.get("action") in ("store_true", "store_false"):
            alias_kwargs.update(nargs=0, const=kwargs["action"] == "store_true")
        parser.add_argument(
            f"--{alias.replace('_', '-')}",
            action=_DeprecatedAlias,
            canonical=f"--{flag}",
            extend=kwargs.get("action") == "extend",
            help=argparse.SUPPRESS,
            **alias_kwargs,
        )
