"""Exception family of gqa-retrofit.

Every error a user can cause by bad input derives from :class:`GQARetrofitError` and carries a
one-line message that names the bad value and what would be valid. The CLI maps these to exit
code 2 and prints only the message (a traceback only with ``--debug``). Each subclass also
inherits the closest builtin, so ``except ValueError`` in user code keeps working.
"""

from __future__ import annotations


class GQARetrofitError(Exception):
    """Base class of every error raised on purpose by gqa-retrofit."""

    exit_code: int = 2


class ConfigError(GQARetrofitError, ValueError):
    """A model config (or a requested head geometry) is missing, malformed or invalid."""


class UnsupportedFamilyError(ConfigError):
    """The model family is not supported for the requested operation."""


class ModelSourceError(GQARetrofitError, FileNotFoundError):
    """A model path or Hub id cannot be resolved (missing, offline, unreachable, no access)."""


class DataError(GQARetrofitError, ValueError):
    """Text or dataset input is missing, empty or too short."""


class ConversionError(GQARetrofitError, RuntimeError):
    """A checkpoint cannot be converted (bad shards, missing tensors, disk full, ...)."""


class OutputExistsError(GQARetrofitError, FileExistsError):
    """The output location exists (and ``overwrite`` was not requested) or overlaps the source."""


class TrainingError(GQARetrofitError, RuntimeError):
    """Training cannot start or continue (bad options, NaN loss, bad resume directory, ...)."""


class HubError(GQARetrofitError, RuntimeError):
    """Talking to the Hugging Face Hub failed in a way the user can fix (token, repo, network)."""


class AssetError(GQARetrofitError, RuntimeError):
    """An embedded default asset (model or text) cannot be fetched or built."""
