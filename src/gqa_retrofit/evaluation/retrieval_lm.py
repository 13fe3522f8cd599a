"""Forward passes the retrieval probes share: per-token losses without full logits, greedy decoding.

An 8K-token window of a 49K-vocabulary model has 1.6 GB of fp32 logits; the probes never build
them. They run the model's base (``model.base_model``: embeddings, blocks, final norm) once and
apply the output head to chunks of positions of the last hidden state; the losses equal those of
the model's own logits (tested on every tiny family), Gemma's final soft-capping included.
Decoding keeps only the last position's logits (``logits_to_keep=1``).
"""

from __future__ import annotations

from typing import Any

from ..arch import FAMILIES
from ..errors import ConfigError

LOSS_CHUNK = 1024  # positions whose logits exist at once when computing losses


def bos_ids(tokenizer: Any) -> list[int]:
    """``[bos_token_id]`` when the tokenizer has a BOS token, else ``[]``."""
    bos = getattr(tokenizer, "bos_token_id", None)
    return [] if bos is None else [int(bos)]


def position_limit(model: Any) -> int | None:
    """The model's ``max_position_embeddings`` (``n_positions`` for GPT-2); None when unknown."""
    config = model.config
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def has_learned_positions(model: Any) -> bool:
    """True for families with an absolute position table (GPT-2, OPT): no position past it."""
    model_type = str(getattr(model.config, "model_type", ""))
    spec = FAMILIES.get(model_type) or FAMILIES.get(model_type.removesuffix("_gqa"))
    return bool(spec is not None and spec.learned_positions)


def check_length(model: Any, length: int, *, what: str) -> bool:
    """Whether ``length`` tokens go beyond the model's position limit (True: flag the result).

    Raises:
        ConfigError: the model has a learned position table and ``length`` exceeds it (such a
            model cannot run past its table at all).
    """
    limit = position_limit(model)
    beyond = limit is not None and length > limit
    if beyond and has_learned_positions(model):
        raise ConfigError(
            f"{what} {length} is beyond the position limit {limit} of this "
            f"{model.config.model_type} model (a learned position table); valid: at most {limit}"
        )
    return beyond


def _logits(model: Any, hidden: Any) -> Any:
    """The output head on ``hidden`` (fp32), soft-capped where the config says so (Gemma)."""
    import torch

    logits = model.get_output_embeddings()(hidden).float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def token_losses(model: Any, input_ids: Any, *, chunk: int = LOSS_CHUNK) -> Any:
    """Next-token losses (nats) of a batch: ``[B, T-1]``, entry ``i`` is the loss of token ``i+1``.

    Raises:
        ConfigError: fewer than 2 tokens per row.
    """
    import torch

    if input_ids.shape[-1] < 2:
        raise ConfigError(f"need at least 2 tokens per sequence, got {input_ids.shape[-1]}")
    with torch.inference_mode():
        hidden = model.base_model(input_ids=input_ids, use_cache=False).last_hidden_state[:, :-1]
        targets = input_ids[:, 1:]
        out = []
        for start in range(0, targets.shape[1], chunk):
            logits = _logits(model, hidden[:, start : start + chunk])
            part = targets[:, start : start + chunk]
            nll = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), part.reshape(-1), reduction="none"
            )
            out.append(nll.view(part.shape))
        return torch.cat(out, dim=1)


def greedy_decode(
    model: Any, input_ids: list[int], new_tokens: int, *, stop_ids: tuple[int, ...] = ()
) -> list[int]:
    """Greedy continuation of one prompt, ``new_tokens`` long or up to the first stop token.

    Prefill and each step go through the model itself with a ``DynamicCache`` and
    ``logits_to_keep=1``, as :mod:`gqa_retrofit.evaluation.bench` decodes.
    """
    import torch
    from transformers import DynamicCache

    device = next(model.parameters()).device
    cache = DynamicCache(config=model.config)
    generated: list[int] = []
    step = torch.tensor([input_ids], device=device)
    with torch.inference_mode():
        for _ in range(new_tokens):
            out = model(input_ids=step, cache=cache, use_cache=True, logits_to_keep=1)
            token = int(out.logits[0, -1].argmax())
            if token in stop_ids:
                break
            generated.append(token)
            step = torch.tensor([[token]], device=device)
    return generated
