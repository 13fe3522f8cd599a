"""Passkey retrieval (Mohtashami & Jaggi 2023, "Landmark Attention").

A five-digit pass key is hidden at a depth of a long haystack; the model is asked for it and
greedy-decodes a few tokens; a trial succeeds when the first number in the answer is the key.

Each prompt is exactly ``length`` tokens::

    [BOS] INTRO haystack[:p] NEEDLE haystack[p:] QUESTION

``INTRO``, ``NEEDLE`` and ``QUESTION`` are tokenized once each (the needle and the question with
a leading space) and the haystack fills the rest. ``p`` is the haystack token where the needle
goes: the filler boundary (or, in natural text, the sentence end) nearest to ``depth`` times the
haystack length, so depth 0 puts the key right after the intro and depth 1 right before the
question. The key and, for a natural-text haystack, the offset of the excerpt come from a
generator seeded with ``(seed, length, depth, trial)``: a cell's prompts do not depend on which
other lengths or depths were asked for.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .._progress import progress
from ..errors import ConfigError, DataError
from .retrieval_lm import bos_ids, check_length, greedy_decode, position_limit

FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
INTRO = (
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize "
    "it. I will quiz you about the important information there."
)
NEEDLE = "The pass key is {key}. Remember it. {key} is the pass key."
QUESTION = "What is the pass key? The pass key is"
FILLER_HAYSTACK = "filler"
DEFAULT_DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
DEFAULT_TRIALS = 2  # per (length, depth)
FIRST_LENGTH = 1024
KEY_DIGITS = 5
ANSWER_TOKENS = KEY_DIGITS + 4  # greedy tokens decoded after the question
SENTENCE_SEARCH = 64  # tokens either side of the target where a sentence end is looked for


def default_lengths(limit: int | None) -> list[int]:
    """The doubling ladder ``1024, 2048, ...`` up to ``limit`` (``[limit]`` when below 1024).

    Raises:
        ConfigError: ``limit`` is None (the model has no position limit to build a ladder to).
    """
    if limit is None:
        raise ConfigError(
            "the model config has no max_position_embeddings; pass the passkey lengths explicitly"
        )
    if limit < FIRST_LENGTH:
        return [limit]
    lengths = [FIRST_LENGTH]
    while lengths[-1] * 2 <= limit:
        lengths.append(lengths[-1] * 2)
    return lengths


def validate_passkey_args(
    lengths: Sequence[int] | None, depths: Sequence[float], trials: int
) -> None:
    """Check the passkey arguments that do not need the model.

    Raises:
        ConfigError: ``trials`` < 1, a depth outside [0, 1], no depths, or a length < 1.
    """
    if trials < 1:
        raise ConfigError(f"passkey trials must be at least 1, got {trials}")
    if not depths:
        raise ConfigError("passkey depths must not be empty; valid: numbers in [0, 1]")
    for depth in depths:
        if not 0.0 <= depth <= 1.0:
            raise ConfigError(f"passkey depth {depth} is outside [0, 1]")
    for length in lengths or ():
        if length < 1:
            raise ConfigError(f"passkey length {length} must be a positive number of tokens")


@dataclass(frozen=True)
class PasskeyTrial:
    """One prompt: where the key was, what the model answered, and whether it was the key."""

    length: int
    depth: float
    trial: int
    needle_token: int  # index of the needle's first token in the prompt
    passkey: str
    answer: str
    success: bool


@dataclass(frozen=True)
class PasskeyCell:
    """Success over the trials of one (length, depth)."""

    depth: float
    successes: int
    trials: int

    @property
    def success_rate(self) -> float:
        return self.successes / self.trials


@dataclass(frozen=True)
class PasskeyLength:
    """Success at one prompt length, over all depths, and per depth."""

    length: int
    beyond_position_limit: bool
    by_depth: list[PasskeyCell]

    @property
    def successes(self) -> int:
        return sum(c.successes for c in self.by_depth)

    @property
    def trials(self) -> int:
        return sum(c.trials for c in self.by_depth)

    @property
    def success_rate(self) -> float:
        return self.successes / self.trials


@dataclass
class PasskeyResult:
    """Passkey success rates per length and depth, with every trial's prompt facts and answer."""

    haystack: str  # "filler" or the path of the natural-text file
    seed: int
    depths: list[float]
    trials_per_depth: int
    position_limit: int | None
    bos_token_id: int | None
    lengths: list[PasskeyLength]
    samples: list[PasskeyTrial] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PasskeyResult:
        """The result back from :meth:`to_dict`'s JSON."""
        return cls(
            haystack=data["haystack"],
            seed=data["seed"],
            depths=list(data["depths"]),
            trials_per_depth=data["trials_per_depth"],
            position_limit=data["position_limit"],
            bos_token_id=data["bos_token_id"],
            lengths=[
                PasskeyLength(
                    row["length"],
                    row["beyond_position_limit"],
                    [PasskeyCell(c["depth"], c["successes"], c["trials"]) for c in row["by_depth"]],
                )
                for row in data["lengths"]
            ],
            samples=[PasskeyTrial(**s) for s in data.get("samples", [])],
        )

    def success_rates(self) -> dict[int, float]:
        """``{length: success rate}`` over all depths."""
        return {row.length: row.success_rate for row in self.lengths}

    def to_dict(self) -> dict[str, Any]:
        return {
            "haystack": self.haystack,
            "seed": self.seed,
            "depths": self.depths,
            "trials_per_depth": self.trials_per_depth,
            "position_limit": self.position_limit,
            "bos_token_id": self.bos_token_id,
            "lengths": [
                {
                    "length": row.length,
                    "beyond_position_limit": row.beyond_position_limit,
                    "success_rate": row.success_rate,
                    "successes": row.successes,
                    "trials": row.trials,
                    "by_depth": [
                        {
                            "depth": c.depth,
                            "success_rate": c.success_rate,
                            "successes": c.successes,
                            "trials": c.trials,
                        }
                        for c in row.by_depth
                    ],
                }
                for row in self.lengths
            ],
            "samples": [asdict(s) for s in self.samples],
        }


def answer_matches(answer: str, passkey: str) -> bool:
    """Whether the first number in ``answer`` is ``passkey`` (``"12345."`` yes, ``"1234"`` no)."""
    found = re.search(r"\d+", answer)
    return found is not None and found.group() == passkey


class _Haystack:
    """Token source of a haystack: the filler repeated, or excerpts of a natural text."""

    def __init__(self, tokenizer: Any, haystack: str | os.PathLike[str], longest: int) -> None:
        self.tokenizer = tokenizer
        self.name = str(haystack)
        self._piece: dict[int, str] = {}
        if self.name == FILLER_HAYSTACK:
            self.unit: list[int] | None = _encode(tokenizer, " " + FILLER)
            self.text: list[int] = []
            return
        self.unit = None
        self.text = haystack_tokens(tokenizer, haystack, longest)

    def tokens(self, count: int, rng: random.Random) -> list[int]:
        """``count`` haystack tokens (a seeded excerpt of a natural text)."""
        if self.unit is not None:
            repeats = count // len(self.unit) + 1
            return (self.unit * repeats)[:count]
        offset = rng.randrange(len(self.text) - count + 1)
        return self.text[offset : offset + count]

    def insertion_point(self, tokens: list[int], depth: float) -> int:
        """The boundary nearest to ``depth * len(tokens)`` where the needle goes."""
        target = round(depth * len(tokens))
        if self.unit is not None:
            unit = len(self.unit)
            return min(round(target / unit) * unit, len(tokens) // unit * unit)
        low, high = max(0, target - SENTENCE_SEARCH), min(len(tokens), target + SENTENCE_SEARCH)
        edges = (0, len(tokens))
        ends = [p for p in range(low, high + 1) if p in edges or self._ends(tokens[p - 1])]
        return min(ends, key=lambda p: (abs(p - target), p)) if ends else target

    def _ends(self, token: int) -> bool:
        if token not in self._piece:
            self._piece[token] = str(self.tokenizer.decode([token])).rstrip()
        return self._piece[token].endswith((".", "!", "?", '."', '!"', '?"'))


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def haystack_tokens(tokenizer: Any, path: str | os.PathLike[str], longest: int) -> list[int]:
    """The tokens of a natural-text haystack file, checked to cover the longest prompt.

    Raises:
        DataError: the file is missing, empty, or has fewer than ``longest`` tokens.
    """
    from .perplexity import read_text

    tokens = _encode(tokenizer, read_text(path))
    if len(tokens) < longest:
        raise DataError(
            f"haystack file {str(path)!r} has {len(tokens)} tokens, fewer than the longest "
            f"passkey length {longest}; use a longer text or shorter lengths"
        )
    return tokens


@dataclass(frozen=True)
class PasskeyPrompt:
    """One prompt of exactly ``length`` tokens with its key and where the needle starts."""

    length: int
    depth: float
    trial: int
    passkey: str
    needle_token: int
    ids: list[int]


class PasskeyPrompts:
    """Builds the prompts of one haystack for one tokenizer (see the module docstring)."""

    def __init__(
        self, tokenizer: Any, haystack: str | os.PathLike[str], *, longest: int, seed: int
    ) -> None:
        self.tokenizer = tokenizer
        self.seed = seed
        self.haystack = _Haystack(tokenizer, haystack, longest)
        self.bos = bos_ids(tokenizer)
        self.intro = _encode(tokenizer, INTRO)
        self.question = _encode(tokenizer, " " + QUESTION)

    def build(self, length: int, depth: float, trial: int) -> PasskeyPrompt:
        """The prompt of one (length, depth, trial).

        Raises:
            ConfigError: ``length`` is shorter than the intro, needle and question.
        """
        rng = random.Random(f"{self.seed}:{length}:{depth}:{trial}")
        key = str(rng.randrange(10 ** (KEY_DIGITS - 1), 10**KEY_DIGITS))
        needle = _encode(self.tokenizer, " " + NEEDLE.format(key=key))
        fixed = len(self.bos) + len(self.intro) + len(needle) + len(self.question)
        if length < fixed:
            raise ConfigError(
                f"passkey length {length} is too short for the intro, needle and question "
                f"({fixed} tokens); valid: at least {fixed}"
            )
        tokens = self.haystack.tokens(length - fixed, rng)
        point = self.haystack.insertion_point(tokens, depth)
        ids = self.bos + self.intro + tokens[:point] + needle + tokens[point:] + self.question
        start = len(self.bos) + len(self.intro) + point
        return PasskeyPrompt(length, depth, trial, key, start, ids)


def passkey_retrieval(
    model: Any,
    tokenizer: Any,
    *,
    lengths: Sequence[int] | None = None,
    depths: Sequence[float] = DEFAULT_DEPTHS,
    trials: int = DEFAULT_TRIALS,
    seed: int = 0,
    haystack: str | os.PathLike[str] = FILLER_HAYSTACK,
) -> PasskeyResult:
    """Passkey success of a loaded causal LM per prompt length and needle depth.

    Args:
        model: a loaded causal LM (fp32 recommended; run in eval mode).
        tokenizer: its tokenizer.
        lengths: prompt lengths in tokens (default: the doubling ladder from 1024 up to the
            model's ``max_position_embeddings``). Lengths beyond the position limit are computed
            and flagged ``beyond_position_limit``.
        depths: needle depths in [0, 1] (0: right after the intro, 1: right before the question).
        trials: prompts per (length, depth), each with its own key.
        seed: seeds the keys and the natural-text excerpts.
        haystack: ``"filler"`` (the classic repeated sentences) or the path of a UTF-8 text.

    Raises:
        ConfigError: ``trials`` < 1, a depth outside [0, 1], a length too short for the intro,
            needle and question, or beyond a learned position table.
        DataError: the haystack file is missing, empty or shorter than the longest length.
    """
    validate_passkey_args(lengths, depths, trials)
    depths = list(dict.fromkeys(float(d) for d in depths))
    limit = position_limit(model)
    ladder = sorted(set(lengths)) if lengths else default_lengths(limit)
    prompts = PasskeyPrompts(tokenizer, haystack, longest=max(ladder), seed=seed)
    stop = tuple(i for i in (getattr(tokenizer, "eos_token_id", None),) if i is not None)
    rows: list[PasskeyLength] = []
    samples: list[PasskeyTrial] = []
    jobs = [(n, d, t) for n in ladder for d in depths for t in range(trials)]
    flags = {n: check_length(model, n, what="passkey length") for n in ladder}
    cells: dict[tuple[int, float], int] = {}
    for length, depth, trial in progress(jobs, desc="passkey", unit="prompt"):
        prompt = prompts.build(length, depth, trial)
        answer_ids = greedy_decode(model, prompt.ids, ANSWER_TOKENS, stop_ids=stop)
        answer = str(tokenizer.decode(answer_ids, skip_special_tokens=True))
        success = answer_matches(answer, prompt.passkey)
        cells[(length, depth)] = cells.get((length, depth), 0) + int(success)
        samples.append(
            PasskeyTrial(
                length=length,
                depth=depth,
                trial=trial,
                needle_token=prompt.needle_token,
                passkey=prompt.passkey,
                answer=answer,
                success=success,
            )
        )
    for length in ladder:
        by_depth = [PasskeyCell(d, cells[(length, d)], trials) for d in depths]
        rows.append(PasskeyLength(length, flags[length], by_depth))
    return PasskeyResult(
        haystack=prompts.haystack.name,
        seed=seed,
        depths=depths,
        trials_per_depth=trials,
        position_limit=limit,
        bos_token_id=prompts.bos[0] if prompts.bos else None,
        lengths=rows,
        samples=samples,
    )
