"""Attention transfer: pca-refit, then gradient refinement of each converted layer (issue 14).

Run: PYTHONPATH=src python benchmarks/retrieval_research/transfer.py NAME [options]

Each layer is converted as the product does (``pca-refit`` inside a CalibrationSession: inputs
from the partially converted model, targets from the original one), then the converted
attention module's q/k/v/o are trained with Adam for ``--steps`` steps to reproduce the
original layer's attention output (relative MSE) on the calibration windows, before the
session advances. The calibration windows are natural text (four training novels) plus
``--copy-windows`` copy-structured windows of ``--seq-len`` tokens: a span of ``seq_len / 2``
tokens repeated twice, the span random token ids (``--copy-kind random``), an excerpt of the
training text (``text``) or half of each (``mixed``). The random spans use seed 1234, so they
differ from the probes' (seed 0).

Appends one row per run to results/transfer.jsonl: the settings, the research copy probe
(harness, 4 spans), the product's copy probe and passkey at 1K (``evaluate_retrieval``),
Persuasion perplexity (8 windows of 512) and seconds.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from harness import append_jsonl, copy_probe, persuasion_perplexity, source_and_tokenizer

torch.manual_seed(0)


def copy_windows(tokenizer: Any, kind: str, count: int, seq_len: int, text_ids: list[int]) -> Any:
    half = seq_len // 2
    g = torch.Generator().manual_seed(1234)
    rows = []
    for n in range(count):
        use_random = kind == "random" or (kind == "mixed" and n % 2 == 0)
        if use_random:
            span = torch.randint(100, tokenizer.vocab_size - 100, (half,), generator=g)
        else:
            start = int(torch.randint(0, len(text_ids) - half, (1,), generator=g))
            span = torch.tensor(text_ids[start : start + half])
        rows.append(torch.cat([span, span]))
    return torch.stack(rows)


def install_copy_windows(args: argparse.Namespace, tokenizer: Any, train: list[str]) -> None:
    """Wrap ``calibration_sample`` so the session's windows get the copy-structured ones too."""
    import gqa_retrofit.conversion.calibration as calibration

    original = calibration.calibration_sample
    if args.copy_windows == 0:
        return
    text = Path(train[0]).read_text(encoding="utf-8")[:600000]
    text_ids = tokenizer(text, add_special_tokens=False).input_ids

    def sample(*a: Any, **k: Any) -> Any:
        got = original(*a, **k)
        extra = copy_windows(tokenizer, args.copy_kind, args.copy_windows, args.seq_len, text_ids)
        got.windows = torch.cat([got.windows, extra])
        return got

    calibration.calibration_sample = sample  # type: ignore[assignment]


def refine(session: Any, i: int, weights: Any, cal: Any, args: argparse.Namespace) -> Any:
    """Train the converted layer's q/k/v/o to reproduce the original attention output."""
    from dataclasses import fields

    from gqa_retrofit.conversion.calibration import _CHUNK_WINDOWS, attention_weights, head_config

    # Clone first: the module's parameters would otherwise share storage with ``weights``
    # (build_attention does not copy on the same device and dtype), and Adam's in-place updates
    # would rewrite the caller's pca-refit weights too.
    weights = weights.replace(
        **{
            f.name: getattr(weights, f.name).clone()
            for f in fields(weights)
            if getattr(weights, f.name) is not None
        }
    )
    module = session.attention_module(i, weights)
    params = [p for p in module.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=args.lr)
    inputs, target = cal.inputs, cal.target
    chunks = list(range(len(session._attn_calls)))
    scale = target.pow(2).mean().item()
    g = torch.Generator().manual_seed(i)
    for step in range(args.steps):
        c = chunks[int(torch.randint(0, len(chunks), (1,), generator=g))]
        rows = slice(c * _CHUNK_WINDOWS, (c + 1) * _CHUNK_WINDOWS)
        a, kw = session._attn_calls[c].with_hidden(inputs[rows])
        out = module(*a, **kw)
        out = out[0] if isinstance(out, tuple) else out
        loss = (out - target[rows]).pow(2).mean() / scale
        opt.zero_grad()
        loss.backward()
        opt.step()
        if args.lr_decay:
            for group in opt.param_groups:
                group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * (step + 1) / args.steps))
    config = head_config(
        session.config, heads=weights.heads, kv_heads=weights.kv_heads, head_dim=weights.head_dim
    )
    return attention_weights(session.spec, config, module)


def add_common_arguments(parser: argparse.ArgumentParser, *, copy_windows: int, steps: int) -> None:
    """The calibration and refinement flags this script and ``single_layer.py`` share."""
    parser.add_argument("name")
    parser.add_argument("--tokens", type=int, default=8192, help="natural calibration tokens")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--copy-windows", type=int, default=copy_windows)
    parser.add_argument("--copy-kind", choices=("random", "text", "mixed"), default="mixed")
    parser.add_argument("--steps", type=int, default=steps, help="refinement steps per layer")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--lr-decay", action="store_true")


@dataclass
class Setup:
    """The live model, its decoder layers and a calibration session over the training novels."""

    tokenizer: Any
    model: Any
    spec: Any
    attn_name: str
    layers: Any
    session: Any
    start: float


def setup(args: argparse.Namespace) -> Setup:
    from harness import load_model

    from gqa_retrofit.arch import get_family
    from gqa_retrofit.assets import default_corpus
    from gqa_retrofit.conversion.calibration import CalibrationSession, _get, _module_path

    start = time.perf_counter()
    src, tok = source_and_tokenizer()
    train = [str(p) for p in default_corpus().train]
    install_copy_windows(args, tok, train)
    model = load_model(src)
    spec = get_family(model.config.model_type)
    layers_path, attn_name = _module_path(spec)
    session = CalibrationSession(src, model.config, train, tokens=args.tokens, seq_len=args.seq_len)
    return Setup(tok, model, spec, attn_name, _get(model, layers_path), session, start)


def main() -> None:
    parser = argparse.ArgumentParser()
    add_common_arguments(parser, copy_windows=0, steps=0)
    parser.add_argument("--kv-heads", type=int, default=1)
    parser.add_argument("--heads", type=int, default=None)
    parser.add_argument("--layers", default="all", help="'all' or comma list to refine")
    parser.add_argument("--save", type=Path, default=None, help="save converted state_dict")
    args = parser.parse_args()

    from gqa_retrofit.conversion.calibration import _get, attention_weights, build_attention
    from gqa_retrofit.conversion.methods import compose
    from gqa_retrofit.conversion.pooling import HeadTarget
    from gqa_retrofit.evaluation.retrieval import RetrievalOptions, evaluate_retrieval

    run = setup(args)
    tok, model, spec, attn_name = run.tokenizer, run.model, run.spec, run.attn_name
    layers, session, start, config = run.layers, run.session, run.start, run.model.config
    target = HeadTarget(args.kv_heads, args.heads)
    refine_layers = (
        set(range(len(layers)))
        if args.layers == "all"
        else {int(x) for x in args.layers.split(",")}
    )
    converted = []
    for i in range(len(layers)):
        source = attention_weights(spec, config, _get(layers[i], attn_name))
        cal = session.layer(i, source)
        weights = compose.convert_attention(source, target, cal, kv="pca", refit=True).weights
        if args.steps and i in refine_layers:
            weights = refine(session, i, weights, cal, args)
        session.advance(i, weights)
        converted.append(weights)
        print(f"layer {i} done {time.perf_counter() - start:.0f}s", flush=True)
    for i, weights in enumerate(converted):
        old = _get(layers[i], attn_name)
        setattr(layers[i], attn_name, build_attention(spec, old, config, weights, layer_idx=i))
    config.num_attention_heads = converted[0].heads
    config.num_key_value_heads = converted[0].kv_heads
    convert_seconds = time.perf_counter() - start
    if args.save:
        torch.save(model.state_dict(), args.save)
    research_copy = copy_probe(model, tok.vocab_size, n=4)
    ppl = persuasion_perplexity(model, tok)
    product = evaluate_retrieval(
        model, tok, RetrievalOptions(probes=("passkey", "copy"), passkey_lengths=(1024,))
    ).summary()
    row = {
        "name": args.name,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "research_copy": research_copy,
        "product": product,
        "persuasion_ppl_8x512": round(ppl, 3),
        "convert_seconds": round(convert_seconds, 1),
        "seconds": round(time.perf_counter() - start, 1),
        "load_average": os.getloadavg(),
    }
    print(row, flush=True)
    append_jsonl("transfer.jsonl", row)


if __name__ == "__main__":
    main()
