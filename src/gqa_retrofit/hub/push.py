"""Publish a retrofitted checkpoint on the Hugging Face Hub.

``push_to_hub`` verifies the checkpoint, makes sure it carries a model card, creates the repo
(``exist_ok``), and uploads the folder's publishable files (:func:`publishable_files`: the
model, its card, the report and plots; never training checkpoints, optimizer or RNG state, and
never through a symbolic link out of the folder) with ``HfApi.upload_folder``: the client
decides per file between a regular, LFS or Xet upload, skips files whose remote copy is
identical (so a re-run after an interrupted upload only sends what is missing) and shows its own
progress display.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._progress import is_quiet
from ..errors import ConversionError, GQARetrofitError, HubError, ModelSourceError
from .card import CARD_FILENAME, has_markers, write_card

# What a published repo holds, as patterns relative to the checkpoint folder: the model (config,
# weights, index, tokenizer, generation settings, custom code, the conversion manifest), its
# card, the retrofit report and plots. Anything else (training checkpoints with optimizer state,
# RNG state, training_state.json, metrics, editor leftovers, hidden files) is never uploaded.
PUBLISHED_PATTERNS: dict[str, tuple[str, ...]] = {
    "model": (
        "config.json",
        "generation_config.json",
        "*.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "tokenizer.model",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
        "chat_template.jinja",
        "chat_template.json",
        "*.py",
        "gqa_retrofit.json",
    ),
    "card": (CARD_FILENAME,),
    "report": ("retrofit_report.md",),
    "plots": ("*.png", "*.svg", "report/*.png", "report/*.svg"),
}


def publishable_files(folder: str | os.PathLike[str]) -> list[str]:
    """The files of ``folder`` that :func:`push_to_hub` uploads (relative POSIX paths).

    Only files matching :data:`PUBLISHED_PATTERNS` at the top level (plots also in
    ``report/``); hidden files never.

    Raises:
        HubError: a file to publish is a symbolic link that leads outside ``folder``.
    """
    import fnmatch

    root = Path(folder).resolve()
    patterns = [p for group in PUBLISHED_PATTERNS.values() for p in group]
    chosen = []
    for path in sorted(Path(folder).glob("*")) + sorted(Path(folder).glob("report/*")):
        rel = path.relative_to(folder).as_posix()
        if path.name.startswith(".") or not any(fnmatch.fnmatchcase(rel, p) for p in patterns):
            continue
        if path.is_symlink() and root not in path.resolve().parents:
            raise HubError(
                f"{rel!r} in {str(folder)!r} is a symbolic link to {str(path.resolve())!r}, "
                "outside the folder: copy the file into the folder or remove the link"
            )
        if path.is_file():
            chosen.append(rel)
    return chosen


def resolve_token(token: str | None = None) -> str:
    """The Hub token to write with: ``token``, else ``HF_TOKEN``, else the HF token file.

    Raises:
        HubError: no token is available anywhere.
    """
    if token:
        return token
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        raise HubError(
            "no Hugging Face token: set HF_TOKEN, run `hf auth login`, or pass --token "
            "(a token with write access to the target namespace)"
        )
    return found


def hub_error(err: Exception, *, repo_id: str, endpoint: str) -> GQARetrofitError:
    """Translate a ``huggingface_hub``/network exception into a one-line typed error.

    The message names the repo and the endpoint, never the token.
    """
    try:  # the HTTP library of huggingface_hub 2.x; 1.x used httpx
        import httpx2 as httpx
    except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
        import httpx  # type: ignore[no-redef]
    from huggingface_hub.errors import (
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(err, OfflineModeIsEnabled):
        return HubError(f"cannot push {repo_id!r}: HF_HUB_OFFLINE is set; unset it to upload")
    if isinstance(err, (httpx.ConnectError, httpx.TimeoutException, ConnectionError)):
        return HubError(
            f"cannot reach the Hub at {endpoint} to push {repo_id!r}: {_first_line(err)}"
        )
    if isinstance(err, RevisionNotFoundError):
        return HubError(f"revision not found in Hub repo {repo_id!r}: give an existing branch")
    if isinstance(err, RepositoryNotFoundError):
        return HubError(
            f"Hub repo {repo_id!r} not found or not writable with this token: check the repo id "
            "(owner/name) and the token's permissions"
        )
    if isinstance(err, HfHubHTTPError):
        status = err.response.status_code if err.response is not None else None
        if status == 401:
            return HubError(f"the Hub at {endpoint} rejected the token (401): use a valid token")
        if status == 403:
            return HubError(
                f"the token may not write to {repo_id!r} (403): use a token with write access "
                f"to the namespace {repo_id.split('/')[0]!r}"
            )
        return HubError(f"the Hub refused the push to {repo_id!r} ({status}): {_first_line(err)}")
    if isinstance(err, ValueError) and "metadata" in str(err).lower():
        return HubError(f"the model card of {repo_id!r} is invalid: {' '.join(str(err).split())}")
    return HubError(f"push to {repo_id!r} failed: {type(err).__name__}: {_first_line(err)}")


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def push_to_hub(
    checkpoint_dir: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    token: str | None = None,
    verify: bool = True,
    endpoint: str | None = None,
) -> str:
    """Upload a converted (or trained) checkpoint with its model card; return the repo URL.

    Args:
        checkpoint_dir: directory written by ``convert``/``train`` (``config.json``, weights,
            ``gqa_retrofit.json``).
        repo_id: ``owner/name`` on the Hub.
        private: create the repo private (ignored when it exists).
        revision: branch to push to (created from ``main`` when missing).
        commit_message: defaults to "Upload <name> retrofitted with gqa-retrofit".
        create_pr: open a pull request instead of committing to the branch.
        token: Hub token; defaults to ``HF_TOKEN`` or the HF token file. Never printed.
        verify: run :func:`gqa_retrofit.conversion.verify.verify_checkpoint` first.
        endpoint: Hub endpoint; defaults to ``HF_ENDPOINT``.

    Returns:
        The URL of the repo (of the branch, or of the pull request with ``create_pr``).

    Raises:
        ModelSourceError: ``checkpoint_dir`` is not a checkpoint directory.
        ConversionError: the checkpoint fails verification.
        HubError: no token, offline, unreachable endpoint, no access, or the Hub refused.
    """
    folder = Path(checkpoint_dir)
    if not (folder / "config.json").is_file():
        raise ModelSourceError(
            f"{str(checkpoint_dir)!r} is not a checkpoint directory (no config.json): give the "
            "output directory of convert or train"
        )
    if "/" not in repo_id or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise HubError(f"invalid repo id {repo_id!r}: expected owner/name")
    if create_pr and revision not in (None, "main"):
        raise HubError(
            f"cannot combine --create-pr with --revision {revision!r}: pull requests target main"
        )
    publishable_files(folder)  # a link out of the folder fails before anything else
    if verify:
        from ..conversion.verify import verify_checkpoint

        report = verify_checkpoint(folder)
        if not report.ok:
            raise ConversionError(
                f"{str(checkpoint_dir)!r} fails verification, not pushing: "
                + "; ".join(report.problems)
                + " (gqa-retrofit verify shows the details; --no-verify skips the check)"
            )

    token = resolve_token(token)
    from huggingface_hub import HfApi, constants
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    api = HfApi(endpoint=endpoint, token=token)
    message = commit_message or f"Upload {folder.resolve().name} retrofitted with gqa-retrofit"
    quiet = is_quiet()
    if quiet:
        disable_progress_bars()
    try:
        # Talk to the Hub first: a bad token, no access or no network fail before any work.
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision not in (None, "main"):
            api.create_branch(repo_id, branch=str(revision), exist_ok=True)
        card_path = folder / CARD_FILENAME
        if not card_path.exists() or has_markers(card_path.read_text(encoding="utf-8")):
            write_card(folder, repo_id=repo_id)  # new, or our section refreshed (user text kept)
        info: Any = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            commit_message=message,
            revision=revision,
            create_pr=create_pr,
            allow_patterns=publishable_files(folder),
        )
    except GQARetrofitError:
        raise
    except Exception as err:
        raise hub_error(err, repo_id=repo_id, endpoint=endpoint) from err
    finally:
        if quiet:
            enable_progress_bars()
    if getattr(info, "pr_url", None):
        return str(info.pr_url)
    url = f"{endpoint}/{repo_id}"
    return url if revision in (None, "main") else f"{url}/tree/{revision}"
