"""Recovery of a retrofitted SmolLM2-135M by short training with distillation.

Arms (each resumable; run a subset with ``--arms``):

- ``original``: the unconverted model (3 KV heads) fine-tuned on the same batches with the same
  settings (cross-entropy only): the fair baseline.
- ``mean``: 3 -> 1 KV heads by mean pooling, then trained with ``(1-A)*CE + A*KL`` distillation
  from the original (A = ``--distill-weight``, 0.5).
- ``best``: 3 -> 1 KV heads by the converter's default data-aware method (``pca-refit``,
  calibrated on the training novels with the default budget), trained like ``mean``.

Budget per arm: ``--steps`` (100) optimizer steps of 4 x 256 tokens of the four training novels,
``--trainable`` (attention projections), AdamW at ``--lr`` (1e-4, chosen by
``train_recovery_sweep.py``), WSD schedule, seed 0. Perplexity on *Persuasion* (first 16 windows
of 512 tokens) before training and at every saved checkpoint gives the curve; greedy
continuations of fixed prompts before/after give the repeated-4-gram fraction.

    python benchmarks/train_recovery.py [--arms best,original,mean] [--steps 100] [--lr 1e-4]

Writes ``benchmarks/results/train_recovery.json`` (after every finished measurement, so a
stopped run keeps what it measured) and ``benchmarks/results/train_recovery.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "train_recovery.json"
PLOT = ROOT / "results" / "train_recovery.png"
WORK = Path(os.environ.get("GQA_BENCH_WORK", Path.home() / ".cache" / "gqa-retrofit" / "bench"))
PROMPTS = [
    "It was a fine morning in early spring, and Anne",
    "The letter from Mr. Elliot arrived just as",
    "There is nothing so dangerous to a young woman as",
]
NEW_TOKENS = 40
TRAIN_ORDER = ["sense_and_sensibility", "pride_and_prejudice", "mansfield_park", "emma"]


def model_dir() -> Path:
    from gqa_retrofit.assets import default_model_dir

    return Path(default_model_dir())


def corpus() -> tuple[list[str], str]:
    from gqa_retrofit.assets import default_corpus

    c = default_corpus()
    # one fixed order (publication order), so every arm and every resume packs the same blocks
    # whichever way the asset module lists the files
    order = {n: i for i, n in enumerate(TRAIN_ORDER)}
    train = sorted((str(p) for p in c.train), key=lambda p: order.get(Path(p).stem, 99))
    return train, str(c.test)


def perplexity(model: Any, tokenizer: Any, text_path: str) -> float:
    """Perplexity over the first 16 windows of 512 tokens (loss on 511 tokens each)."""
    from gqa_retrofit.evaluation.perplexity import evaluate_perplexity

    result = evaluate_perplexity(model, text_path, tokenizer=tokenizer, seq_len=512, max_windows=16)
    return float(result.perplexity)


def generations(model: Any, tokenizer: Any) -> dict[str, Any]:
    from gqa_retrofit.evaluation.generation import greedy_continuations

    found = greedy_continuations(model, tokenizer, PROMPTS, new_tokens=NEW_TOKENS).to_dict()
    for sample in found["samples"]:
        sample["continuation"] = sample.pop("text")
        sample.pop("token_ids")
    return found


def convert(src: Path, dst: Path, method: str, calibration_tokens: int | None = None) -> Path:
    """3 -> 1 KV heads with the registered pooling ``method`` (calibrated on the training novels
    by the converter's defaults when the method is data-aware), as a plain llama checkpoint."""
    if not (dst / "config.json").is_file():
        from gqa_retrofit import convert_checkpoint

        extra = {} if calibration_tokens is None else {"calibration_tokens": calibration_tokens}
        convert_checkpoint(str(src), str(dst), kv_heads=1, method=method, **extra)
    return dst


def best_method() -> str:
    """The converter's default data-aware method (what ``convert --calibration`` picks)."""
    from gqa_retrofit.conversion.convert import DEFAULT_CALIBRATED_METHOD

    return str(DEFAULT_CALIBRATED_METHOD)


def warmup_steps(steps: int) -> int:
    return min(10, max(1, steps // 5))


def recipe(
    start: Path,
    out: Path,
    teacher: str | None,
    *,
    steps: int,
    lr: float,
    trainable: str,
    distill_weight: float,
    **extra: Any,
) -> Any:
    """The benchmark's fixed training recipe (shared with ``train_recovery_sweep.py``): blocks of
    4 x 256 tokens of the training novels in one fixed order, WSD, T = 1, seed 0."""
    from gqa_retrofit.training import TrainOptions

    return TrainOptions(
        model=str(start),
        out=str(out),
        train_data=corpus()[0],
        teacher=teacher,
        train_steps=steps,
        seq_len=256,
        batch_size=4,
        lr=lr,
        schedule="wsd",
        warmup=warmup_steps(steps),
        trainable=trainable,
        distill_weight=distill_weight,
        temperature=1.0,
        seed=0,
        **extra,
    )


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
            label = {"original": "original, fine-tuned (CE)"}.get(
                name, f"{arm.get('method', name)} 3->1 KV + distillation"
            )
            ax.plot([s for s, _ in curve], [v for _, v in curve], marker="o", label=label)
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
    parser.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (every arm)")
    parser.add_argument("--trainable", default="attention", help="attention, all or lora")
    parser.add_argument(
        "--distill-weight", type=float, default=0.5, help="weight A of the KL term (converted arms)"
    )
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
    from gqa_retrofit.training import train
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
        "lr": args.lr,
        "schedule": "wsd",
        "warmup": warmup_steps(args.steps),
        "trainable": args.trainable,
        "distill": f"{1 - args.distill_weight:g}*CE + {args.distill_weight:g}*KL (T=1), "
        "converted arms only; the original trains on CE",
        "perplexity": "first 16 windows of 512 tokens, loss on 511 tokens each",
        "device": f"CPU, {args.threads} threads",
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
            start = convert(src, WORK / "smollm2-kv1-mean", "mean")
            entry["method"] = "mean"
        elif arm == "best":
            entry["method"] = best_method()
            start = convert(src, WORK / "smollm2-kv1-best", entry["method"])
        else:
            raise SystemExit(f"unknown arm {arm!r}")
        curve = entry.setdefault("curve", {})
        if "0" not in curve:
            model = load(start)
            curve["0"] = perplexity(model, tokenizer, test_file)
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
        options = recipe(
            start,
            out,
            teacher,
            steps=args.steps,
            lr=args.lr,
            trainable=args.trainable,
            distill_weight=args.distill_weight,
            save_every=args.eval_every,
            keep_checkpoints=args.steps // args.eval_every + 1,
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
            curve[step] = perplexity(model, tokenizer, test_file)
            del model
            save_results(results)
            plot(results)
        model = load(out)
        # the final model holds the weights of the last checkpoint: reuse its curve point
        last = curve.get(str(args.steps))
        entry["final_perplexity"] = (
            last if last is not None else perplexity(model, tokenizer, test_file)
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
