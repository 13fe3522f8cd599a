"""Recovery of a retrofitted SmolLM2-135M by short training with distillation.

Arms (each resumable; run a subset with ``--arms``):

- ``original``: the unconverted model (3 KV heads) fine-tuned on the same batches (CE only):
  the fair baseline.
- ``mean``: 3 -> 1 KV heads by mean pooling (pooling registry), then trained with
  0.5*CE + 0.5*KL distillation from the original.
- ``best``: the best data-aware conversion available in ``gqa_retrofit.conversion`` (if any),
  trained like ``mean``.

Budget per arm: 100 optimizer steps of 4 x 256 tokens of the four training novels, attention
projections trainable, AdamW lr 3e-4, WSD schedule, seed 0. Perplexity on *Persuasion* (first 16
windows of 512 tokens) before training and at every saved checkpoint gives the curve; greedy
continuations of fixed prompts before/after give the repeated-4-gram fraction.

    python benchmarks/train_recovery.py [--arms original,mean] [--steps 100]

Writes ``benchmarks/results/train_recovery.json`` (after every finished measurement, so a
stopped run keeps what it measured) and ``benchmarks/results/train_recovery.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "train_recovery.json"
PLOT = ROOT / "results" / "train_recovery.png"
WORK = Path(os.environ.get("GQA_BENCH_WORK", Path.home() / ".cache" / "gqa-retrofit" / "bench"))
CACHE = Path.home() / ".cache" / "gqa-retrofit"
PROMPTS = [
    "It was a fine morning in early spring, and Anne",
    "The letter from Mr. Elliot arrived just as",
    "There is nothing so dangerous to a young woman as",
]
NEW_TOKENS = 40
TRAIN_ORDER = ["sense_and_sensibility", "pride_and_prejudice", "mansfield_park", "emma"]


def model_dir() -> Path:
    try:
        from gqa_retrofit.assets import default_model_dir

        return Path(default_model_dir())
    except ImportError:
        return CACHE / "models" / "SmolLM2-135M-Instruct"


def corpus() -> tuple[list[str], str]:
    try:
        from gqa_retrofit.assets import default_corpus

        c = default_corpus()
        # one fixed order (publication order), so every arm and every resume packs the same
        # blocks whichever way the asset module lists the files
        order = {n: i for i, n in enumerate(TRAIN_ORDER)}
        train = sorted((str(p) for p in c.train), key=lambda p: order.get(Path(p).stem, 99))
        return train, str(c.test)
    except ImportError:
        austen = CACHE / "text" / "austen"
        return [str(austen / f"{n}.txt") for n in TRAIN_ORDER], str(austen / "persuasion.txt")


def perplexity(
    model: Any, tokenizer: Any, text_path: str, windows: int = 16, seq_len: int = 512
) -> dict[str, Any]:
    """Perplexity over the first ``windows`` windows of ``seq_len`` tokens (loss on seq_len-1)."""
    try:
        from gqa_retrofit.evaluation.perplexity import evaluate_perplexity

        result = evaluate_perplexity(
            model, text_path, tokenizer=tokenizer, seq_len=seq_len, max_windows=windows
        )
        return {"perplexity": float(result.perplexity), "evaluator": "gqa_retrofit"}
    except ImportError:
        pass
    text = Path(text_path).read_text(encoding="utf-8")
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for w in range(windows):
            chunk = torch.tensor([ids[w * seq_len : (w + 1) * seq_len]])
            if chunk.shape[1] < seq_len:
                break
            logits = model(input_ids=chunk, use_cache=False).logits
            loss = torch.nn.functional.cross_entropy(logits[0, :-1].float(), chunk[0, 1:])
            total += float(loss) * (seq_len - 1)
            count += seq_len - 1
    return {"perplexity": math.exp(total / count), "evaluator": "benchmark-fallback"}


def repeated_4gram_fraction(ids: list[int]) -> float:
    grams = [tuple(ids[i : i + 4]) for i in range(len(ids) - 3)]
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


def generations(model: Any, tokenizer: Any) -> dict[str, Any]:
    model.eval()
    out, fractions = [], []
    for prompt in PROMPTS:
        enc = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            gen = model.generate(
                **enc,
                max_new_tokens=NEW_TOKENS,
                do_sample=False,
                pad_token_id=tokenizer.eos_token_id,
            )
        new = gen[0, enc["input_ids"].shape[1] :].tolist()
        fractions.append(repeated_4gram_fraction(new))
        out.append(
            {
                "prompt": prompt,
                "continuation": tokenizer.decode(new),
                "repeated_4gram_fraction": fractions[-1],
            }
        )
    return {"samples": out, "repeated_4gram_fraction": sum(fractions) / len(fractions)}


def convert_mean(src: Path, dst: Path) -> Path:
    """3 -> 1 KV heads by the registry's mean pooling, written as a plain llama checkpoint."""
    if (dst / "config.json").is_file():
        return dst
    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig, AutoTokenizer

    from gqa_retrofit.conversion.canonical import AttentionWeights
    from gqa_retrofit.conversion.pooling import HeadTarget, get_pooling

    config = AutoConfig.from_pretrained(src)
    n_h, n_kv, d_h, d = (
        config.num_attention_heads,
        config.num_key_value_heads,
        config.head_dim,
        config.hidden_size,
    )
    state = load_file(str(src / "model.safetensors"))
    pool = get_pooling("mean").fn
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}.self_attn."
        w = AttentionWeights(
            q=state[p + "q_proj.weight"].view(n_h, d_h, d),
            k=state[p + "k_proj.weight"].view(n_kv, d_h, d),
            v=state[p + "v_proj.weight"].view(n_kv, d_h, d),
            o=state[p + "o_proj.weight"].view(d, n_h, d_h),
        )
        pooled = pool(w, HeadTarget(kv_heads=1)).weights
        state[p + "k_proj.weight"] = pooled.k.reshape(-1, d).contiguous()
        state[p + "v_proj.weight"] = pooled.v.reshape(-1, d).contiguous()
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    config.num_key_value_heads = 1
    config.save_pretrained(tmp)
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    AutoTokenizer.from_pretrained(src).save_pretrained(tmp)
    (tmp / "gqa_retrofit.json").write_text(
        json.dumps(
            {"source": str(src), "method": "mean", "kv_heads": {"from": n_kv, "to": 1}}, indent=2
        )
    )
    tmp.rename(dst)
    return dst


def convert_best(src: Path, dst: Path) -> tuple[Path, str] | None:
    """The best data-aware conversion on main, if the conversion package provides one."""
    try:
        from gqa_retrofit.conversion import convert_checkpoint  # type: ignore[attr-defined]
    except ImportError:
        return None
    for method in ("pca_refit", "pca", "aligned"):
        try:
            if not (dst / "config.json").is_file():
                convert_checkpoint(str(src), str(dst), kv_heads=1, method=method)
            return dst, method
        except Exception as err:
            print(f"best arm: method {method!r} unavailable: {err}", file=sys.stderr)
    return None


def load(path: Path, state_file: Path | None = None) -> Any:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    if state_file is not None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(state_file)), strict=False)
    return model.eval()


def save_results(results: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    for arm in results.get("arms", {}).values():
        if arm.get("status") != "complete":
            arm["partial"] = "measurements so far; the arm did not finish (yet)"
        else:
            arm.pop("partial", None)
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, RESULTS)


def plot(results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, arm in results["arms"].items():
        curve = sorted((int(s), v) for s, v in arm.get("curve", {}).items())
        if curve:
            ax.plot([s for s, _ in curve], [v for _, v in curve], marker="o", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step (4 x 256 tokens each)")
    ax.set_ylabel("perplexity on Persuasion (16 x 512 tokens)")
    ax.set_title("SmolLM2-135M: recovery after 3 -> 1 KV heads")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", default="original,mean,best")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="results file (run arms in parallel processes with separate files)",
    )
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="*",
        default=[],
        help="only merge the arms of these results files into --results",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global RESULTS, PLOT
    if args.results is not None:
        RESULTS = args.results
        PLOT = RESULTS.with_suffix(".png")
    if args.merge:
        results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"arms": {}}
        for other in args.merge:
            results["arms"].update(json.loads(other.read_text())["arms"])
        finish(results)
        return 0

    from gqa_retrofit._progress import set_quiet
    from gqa_retrofit.training import TrainOptions, train
    from gqa_retrofit.training.modeling import load_tokenizer

    set_quiet(True)
    src = model_dir()
    train_files, test_file = corpus()
    tokenizer = load_tokenizer(src)
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results.setdefault("arms", {})
    results["setup"] = {
        "model": "SmolLM2-135M-Instruct (llama, 9 q / 3 kv heads), fp32",
        "train_data": [Path(f).name for f in train_files],
        "test_data": Path(test_file).name,
        "steps": args.steps,
        "planned_steps": 100,
        "batch": "4 x 256 tokens",
        "lr": 3e-4,
        "schedule": "wsd",
        "warmup": min(10, max(1, args.steps // 5)),
        "trainable": "attention",
        "distill": "0.5*CE + 0.5*KL (T=1)",
        "perplexity": "first 16 windows of 512 tokens, loss on 511 tokens each",
        "device": f"CPU, {args.threads} threads (shared machine)",
        "generation": f"greedy, {NEW_TOKENS} new tokens, {len(PROMPTS)} prompts",
    }
    WORK.mkdir(parents=True, exist_ok=True)
    for arm in [a.strip() for a in args.arms.split(",") if a.strip()]:
        entry = results["arms"].setdefault(arm, {"status": "started"})
        if entry.get("status") == "complete":
            print(f"{arm}: already complete", file=sys.stderr)
            continue
        teacher: str | None = str(src)
        if arm == "original":
            start, teacher = src, None
        elif arm == "mean":
            start = convert_mean(src, WORK / "smollm2-kv1-mean")
        elif arm == "best":
            best = convert_best(src, WORK / "smollm2-kv1-best")
            if best is None:
                entry.update(
                    status="skipped",
                    reason="no data-aware conversion available "
                    "in gqa_retrofit.conversion on this branch",
                )
                save_results(results)
                continue
            start, entry["method"] = best
        else:
            raise SystemExit(f"unknown arm {arm!r}")
        curve = entry.setdefault("curve", {})
        if "0" not in curve:
            model = load(start)
            curve["0"] = perplexity(model, tokenizer, test_file)["perplexity"]
            entry["before"] = generations(model, tokenizer)
            del model
            save_results(results)
        out = WORK / f"train-{arm}"
        marker = out / "training_state.json"
        resume = (
            "latest"
            if marker.is_file() and json.loads(marker.read_text()).get("latest_checkpoint")
            else None
        )
        options = TrainOptions(
            model=str(start),
            out=str(out),
            data=train_files,
            teacher=teacher,
            max_steps=args.steps,
            seq_len=256,
            batch_size=4,
            lr=3e-4,
            schedule="wsd",
            warmup=min(10, max(1, args.steps // 5)),
            trainable="attention",
            distill_weight=0.5,
            temperature=1.0,
            save_every=args.eval_every,
            keep_checkpoints=args.steps // args.eval_every + 1,
            seed=0,
            resume=resume,
            overwrite=resume is None,
        )
        t0 = time.perf_counter()
        if not json.loads(marker.read_text()).get("complete", False) if marker.is_file() else True:
            report = train(options)
            entry["train"] = {
                k: v
                for k, v in report.to_dict().items()
                if k
                in (
                    "steps",
                    "tokens",
                    "wall_seconds",
                    "tokens_per_second",
                    "first_loss",
                    "final_loss",
                    "losses",
                    "trainable_parameters",
                    "memory",
                    "resumed_from_step",
                )
            }
        entry["train_seconds_this_session"] = time.perf_counter() - t0
        save_results(results)
        for ckpt in sorted((out / "checkpoints").glob("step-*")):
            step = str(int(ckpt.name.split("-")[1]))
            if step in curve:
                continue
            model = load(start, ckpt / "model.safetensors")
            curve[step] = perplexity(model, tokenizer, test_file)["perplexity"]
            del model
            save_results(results)
            plot(results)
        model = load(out)
        # the final model holds the weights of the last checkpoint: reuse its curve point
        last = curve.get(str(args.steps))
        entry["final_perplexity"] = (
            last if last is not None else perplexity(model, tokenizer, test_file)["perplexity"]
        )
        entry["after"] = generations(model, tokenizer)
        entry["status"] = "complete"
        del model
        save_results(results)
        plot(results)
    finish(results)
    return 0


def finish(results: dict[str, Any]) -> None:
    """Ratios to the equally fine-tuned original, the plot, and the final JSON."""
    steps = results.get("setup", {}).get("steps")
    notes = []
    if steps is not None and steps < 100:
        notes.append(f"reduced budget: {steps} steps per arm instead of the planned 100")
    for name, arm in results["arms"].items():
        if arm.get("status") != "complete":
            notes.append(f"arm {name!r} did not complete: {arm.get('reason', 'stopped')}")
    results["status"] = "complete" if not notes else "partial: " + "; ".join(notes)
    base = results["arms"].get("original", {}).get("final_perplexity")
    if base:
        results["ratio_to_finetuned_original"] = {
            name: arm["final_perplexity"] / base
            for name, arm in results["arms"].items()
            if arm.get("final_perplexity")
        }
    save_results(results)
    plot(results)
    print(json.dumps(results.get("ratio_to_finetuned_original", {}), indent=2))


if __name__ == "__main__":
    sys.exit(main())
