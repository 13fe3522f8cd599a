"""Training throughput: gqa-retrofit's accelerate loop vs a plain ``transformers.Trainer``.

Same model, same packed blocks, same batch (4 x 256 tokens), same optimizer (AdamW, clipping at
1.0), same device (CPU), same thread count; all parameters train, no teacher. Each measurement
runs in its own subprocess so that its peak RSS is its own; the two sides alternate
(ours, trainer, ours, trainer, ...) so that load from other processes on a shared machine hits
both alike. Tokens/s counts the steps after ``--warmup-steps``, timed from the end of the last
warmup step to the end of the last step (model loading and data preparation excluded on both
sides). Both sides write the trained model at the end (ours always does), so peak RSS compares
like with like.

    python benchmarks/train_throughput.py [--model smollm2|small] [--rounds 3] [--steps 8]

``small`` (the default, quick on a shared 2-core machine) is a 4-layer llama with hidden 256 and the
SmolLM2 tokenizer/vocabulary (49,152); ``smollm2`` is the embedded 135M model.
Writes ``benchmarks/results/train_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "train_throughput.json"
SEQ, BATCH = 256, 4


def build_model(kind: str, work: Path) -> Path:
    from gqa_retrofit.assets import default_model_dir

    src = Path(default_model_dir())
    if kind == "smollm2":
        return src
    out = work / "small-llama"
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return out


def data_files() -> list[str]:
    from gqa_retrofit.assets import default_corpus

    return [str(default_corpus().train[0])]  # Emma alone: plenty of blocks for a few steps


def run_ours(model: Path, steps: int, warmup: int, work: Path) -> dict[str, Any]:
    from gqa_retrofit._progress import set_quiet
    from gqa_retrofit.training import TrainOptions, train

    set_quiet(True)
    ends: list[float] = []
    options = TrainOptions(
        model=str(model),
        out=str(work / "ours-out"),
        train_data=data_files(),
        train_steps=steps,
        seq_len=SEQ,
        batch_size=BATCH,
        lr=3e-4,
        warmup=0,
        trainable="all",
        overwrite=True,
        max_grad_norm=1.0,
    )
    train(options, on_step=lambda step, metrics: ends.append(time.perf_counter()))
    return {"step_ends": ends}


def run_trainer(model: Path, steps: int, warmup: int, work: Path) -> dict[str, Any]:
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from gqa_retrofit.training.data import load_packed

    tokenizer = AutoTokenizer.from_pretrained(model)
    blocks = load_packed(data_files(), tokenizer, SEQ).blocks

    class Blocks(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return int(blocks.shape[0])

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": blocks[i], "labels": blocks[i]}

    ends: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            ends.append(time.perf_counter())

    lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    args = TrainingArguments(
        output_dir=str(work / "trainer-out"),
        per_device_train_batch_size=BATCH,
        max_steps=steps,
        learning_rate=3e-4,
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_grad_norm=1.0,
        optim="adamw_torch",
        weight_decay=0.0,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
        logging_strategy="no",
        seed=0,
    )
    trainer = Trainer(model=lm, args=args, train_dataset=Blocks(), callbacks=[Clock()])
    trainer.train()
    trainer.save_model(str(work / "trainer-out"))  # like ours, which always writes the result
    return {"step_ends": ends}


def child(side: str, model: str, steps: int, warmup: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        fn = run_ours if side == "ours" else run_trainer
        result = fn(Path(model), steps, warmup, Path(tmp))
    ends = result["step_ends"]
    timed = ends[warmup:]
    seconds = timed[-1] - ends[warmup - 1]
    tokens = len(timed) * BATCH * SEQ
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "side": side,
                "tokens_per_second": tokens / seconds,
                "timed_steps": len(timed),
                "seconds": seconds,
                "peak_rss_bytes": peak_kib * 1024,
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["small", "smollm2"], default="small")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.model_dir, args.steps, args.warmup_steps, args.threads)
        return 0
    work = Path.home() / ".cache" / "gqa-retrofit" / "bench"
    work.mkdir(parents=True, exist_ok=True)
    model = build_model(args.model, work)
    env = dict(os.environ, GQA_RETROFIT_QUIET="1", OMP_NUM_THREADS=str(args.threads))
    runs: list[dict[str, Any]] = []
    for _ in range(args.rounds):
        for side in ("ours", "trainer"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    side,
                    "--model-dir",
                    str(model),
                    "--steps",
                    str(args.steps),
                    "--warmup-steps",
                    str(args.warmup_steps),
                    "--threads",
                    str(args.threads),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(runs[-1], file=sys.stderr)
    summary: dict[str, Any] = {}
    for side in ("ours", "trainer"):
        mine = [r for r in runs if r["side"] == side]
        summary[side] = {
            "median_tokens_per_second": statistics.median(r["tokens_per_second"] for r in mine),
            "peak_rss_bytes_max": max(r["peak_rss_bytes"] for r in mine),
        }
    ratio = (
        summary["ours"]["median_tokens_per_second"] / summary["trainer"]["median_tokens_per_second"]
    )
    import torch
    import transformers

    results = {
        "setup": {
            "model": args.model,
            "model_dir": model.name,
            "batch": f"{BATCH} x {SEQ} tokens",
            "steps": args.steps,
            "warmup_steps_excluded": args.warmup_steps,
            "rounds": args.rounds,
            "optimizer": "AdamW lr 3e-4, clip 1.0, all parameters",
            "device": "cpu",
            "threads": args.threads,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "machine": f"{os.cpu_count()} logical CPUs; 1-minute load average "
            f"{os.getloadavg()[0]:.1f} at the end",
        },
        "runs": runs,
        "summary": summary,
        "ours_over_trainer": ratio,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({"ours_over_trainer": ratio, **summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
