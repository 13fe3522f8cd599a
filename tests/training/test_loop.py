from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gqa_retrofit.errors import DataError, OutputExistsError, TrainingError
from gqa_retrofit.training import TrainOptions, train

from .helpers import char_tokenizer, save_tiny_lm

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"


def _opts(model: Path, out: Path, corpus: Path, **kw) -> TrainOptions:
    base = dict(
        model=str(model),
        out=str(out),
        train_data=[str(corpus / "*.txt")],
        seq_len=32,
        batch_size=2,
        train_steps=6,
        lr=3e-3,
        warmup=1,
        seed=0,
    )
    base.update(kw)
    return TrainOptions.from_dict(base)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def _run_subprocess(options: TrainOptions, tmp: Path, kill_at: int | None = None) -> int:
    spec = tmp / f"opts-{kill_at}.json"
    spec.write_text(json.dumps(options.to_dict()))
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(SRC), str(HERE.parents[0])]),
        GQA_RETROFIT_QUIET="1",
        OMP_NUM_THREADS="1",
    )
    cmd = [sys.executable, str(HERE / "run_train.py"), str(spec)]
    if kill_at is not None:
        cmd.append(str(kill_at))
    return subprocess.run(cmd, env=env, capture_output=True, timeout=300).returncode


def test_loss_goes_down_and_eval_improves(
    tiny_lm: Path,
    corpus_dir: Path,
    tmp_path: Path,
) -> None:
    (tmp_path / "heldout.txt").write_text("Emma Woodhouse, handsome, clever, and rich. " * 3)
    report = train(
        _opts(
            tiny_lm,
            tmp_path / "out",
            corpus_dir,
            trainable="all",
            train_steps=25,
            lr=1e-2,
            eval_data=str(tmp_path / "heldout.txt"),
            eval_every=5,
        )
    )
    first, last = sum(report.losses[:3]) / 3, sum(report.losses[-3:]) / 3
    assert last < first - 1.0, report.losses  # random init: ~4.8 nats -> well below 3.8
    evals = [e["eval_loss"] for e in report.evaluations]
    assert len(evals) == 5 and evals[-1] < evals[0]
    lines = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == list(range(1, 26))
    assert all(x["tokens_per_second"] > 0 for x in lines if "loss" in x)
    assert report.tokens == 25 * 2 * 32


def test_trainable_attention_changes_only_attention(
    tiny_lm: Path, corpus_dir: Path, tmp_path: Path
) -> None:
    train(_opts(tiny_lm, tmp_path / "out", corpus_dir, trainable="attention", train_steps=3))
    before, after = _weights(tiny_lm), _weights(tmp_path / "out")
    assert set(before) == set(after)
    attention = [k for k in before if ".self_attn." in k]
    assert len(attention) == 8  # q, k, v, o in 2 layers
    for key in before:
        if key in attention:
            assert not torch.equal(before[key], after[key]), key
        else:
            assert torch.equal(before[key], after[key]), key


def test_lora_output_is_a_plain_checkpoint_loadable_without_peft(
    tiny_lm: Path, corpus_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    train(_opts(tiny_lm, out, corpus_dir, trainable="lora", lora_r=4, train_steps=3, lr=5e-2))
    before, after = _weights(tiny_lm), _weights(out)
    assert set(after) == set(before)  # no lora_A/lora_B, no base_model prefixes
    assert not (out / "adapter_config.json").exists()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # LoRA targets q/k/v/o; lora_B starts at zero, so after a few steps merged weights moved
    assert changed and all(".self_attn." in k for k in changed)
    # a plain transformers model with exactly the source's tensors: nothing of peft is needed
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(str(out), output_loading_info=True)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert "peft" not in json.loads((out / "config.json").read_text()).get("architectures", [""])[0]


def test_kill_and_resume_is_bit_identical(tiny_lm: Path, corpus_dir: Path, tmp_path: Path) -> None:
    teacher = save_tiny_lm(tmp_path / "teacher", seed=1)
    common = dict(
        train_steps=8,
        save_every=3,
        teacher=str(teacher),
        trainable="all",
        distill_weight=0.5,
        temperature=2.0,
    )
    # uninterrupted reference in this process (one thread, like the subprocess)
    train(_opts(tiny_lm, tmp_path / "full", corpus_dir, **common))
    broken = _opts(tiny_lm, tmp_path / "broken", corpus_dir, **common)
    # SIGKILL after step 5: the last checkpoint is step 3, steps 4-5 are lost
    assert _run_subprocess(broken, tmp_path, kill_at=5) == -9
    marker = json.loads((tmp_path / "broken" / "training_state.json").read_text())
    assert marker["latest_checkpoint"] == "checkpoints/step-000003"
    assert not (tmp_path / "broken" / "config.json").exists()  # no final model yet
    report = train(_opts(tiny_lm, tmp_path / "broken", corpus_dir, resume="latest", **common))
    assert report.resumed_from_step == 3 and report.steps == 8
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "broken")
    assert set(a) == set(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(
        a["model.layers.0.mlp.up_proj.weight"],
        _weights(tiny_lm)["model.layers.0.mlp.up_proj.weight"],
    )
    steps = [
        json.loads(x)["step"]
        for x in (tmp_path / "broken" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == list(range(1, 9))  # lost steps rewritten once, no duplicates


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(
    tiny_lm: Path, corpus_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(
        TrainingError,
        match=r"loss became NaN/Inf at step \d+ .*last good "
        r"checkpoint: .*step-0000",
    ):
        train(
            _opts(
                tiny_lm,
                out,
                corpus_dir,
                trainable="all",
                lr=1e30,
                warmup=0,
                max_grad_norm=0.0,
                save_every=1,
                train_steps=6,
            )
        )
    marker = json.loads((out / "training_state.json").read_text())
    good = _weights(out / marker["latest_checkpoint"])
    assert all(torch.isfinite(t).all() for t in good.values())
    assert not (out / "config.json").exists()


def test_manifest_gets_a_training_record(tiny_lm: Path, corpus_dir: Path, tmp_path: Path) -> None:
    (tiny_lm / "gqa_retrofit.json").write_text(json.dumps({"method": "mean", "source": "x"}))
    report = train(_opts(tiny_lm, tmp_path / "out", corpus_dir, train_steps=2))
    manifest = json.loads((tmp_path / "out" / "gqa_retrofit.json").read_text())
    assert manifest["method"] == "mean" and manifest["source"] == "x"
    record = manifest["training"]
    assert record["steps"] == 2 and record["tokens"] == 2 * 2 * 32
    assert record["data_fingerprint"] == report.data_fingerprint
    assert record["final_loss"] == report.final_loss and "losses" not in record
    assert record["teacher"] is None and record["wall_seconds"] > 0


# ------------------------------------------------------------------------- bad input
def test_teacher_with_other_vocab_or_tokenizer_is_refused(
    tiny_lm: Path, corpus_dir: Path, tmp_path: Path
) -> None:
    other_vocab = save_tiny_lm(tmp_path / "t1", vocab_size=100)
    with pytest.raises(TrainingError, match="has vocab_size 100 but the student has 128"):
        train(_opts(tiny_lm, tmp_path / "o1", corpus_dir, teacher=str(other_vocab)))
    other_tok = save_tiny_lm(tmp_path / "t2", tokenizer=char_tokenizer(extra="é"))
    with pytest.raises(TrainingError, match="different tokenizer than the student"):
        train(_opts(tiny_lm, tmp_path / "o2", corpus_dir, teacher=str(other_tok)))
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_out_holding_an_unrelated_model_is_untouched(
    tiny_lm: Path, corpus_dir: Path, tmp_path: Path
) -> None:
    other = save_tiny_lm(tmp_path / "other", seed=5)
    snapshot = {p.name: p.read_bytes() for p in other.iterdir()}
    with pytest.raises(OutputExistsError, match="not a gqa-retrofit training run"):
        train(_opts(tiny_lm, other, corpus_dir))
    assert {p.name: p.read_bytes() for p in other.iterdir()} == snapshot


def test_rerun_without_resume_and_bad_resume_dirs(
    tiny_lm: Path, corpus_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    train(_opts(tiny_lm, out, corpus_dir, train_steps=2))
    with pytest.raises(OutputExistsError, match="pass --resume to continue it or --overwrite"):
        train(_opts(tiny_lm, out, corpus_dir, train_steps=2))
    with pytest.raises(TrainingError, match="is not a training checkpoint"):
        train(_opts(tiny_lm, out, corpus_dir, resume=str(tiny_lm)))
    with pytest.raises(TrainingError, match=r"--resume latest: .* holds no training run"):
        train(_opts(tiny_lm, tmp_path / "fresh", corpus_dir, resume="latest"))
    # resuming with different data is refused
    (tmp_path / "other.txt").write_text("completely different text " * 20)
    with pytest.raises(TrainingError, match="data_fingerprint was"):
        train(
            _opts(
                tiny_lm,
                out,
                corpus_dir,
                train_data=[str(tmp_path / "other.txt")],
                resume="latest",
                train_steps=4,
            )
        )


def test_eval_text_inside_training_data_is_refused(
    tiny_lm: Path, corpus_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(DataError, match=r"doc1\.txt' is also in the training data"):
        train(_opts(tiny_lm, tmp_path / "out", corpus_dir, eval_data=str(corpus_dir / "doc1.txt")))
    assert not (tmp_path / "out").exists()


def test_cli_bad_input_exits_2_with_one_line(
    tiny_lm: Path, corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gqa_retrofit.cli.main import main

    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "short.txt").write_text("too short")
    cases = [
        (["--train-data", str(corpus_dir), "--train-steps", "0"], "--train-steps 0 is invalid"),
        (["--train-data", str(tmp_path / "empty.txt")], "is empty"),
        (
            ["--train-data", str(tmp_path / "short.txt"), "--seq-len", "64"],
            "shorter than one block of 64 tokens",
        ),
        (
            ["--train-data", str(corpus_dir), "--resume", str(corpus_dir)],
            "is not a training checkpoint",
        ),
    ]
    for extra, message in cases:
        code = main(["--quiet", "train", str(tiny_lm), str(tmp_path / "out"), *extra])
        err = capsys.readouterr().err
        lines = [x for x in err.splitlines() if x.startswith("gqa-retrofit train")]
        assert code == 2, err
        assert len(lines) == 1 and message in lines[0], err
        assert not (tmp_path / "out").exists()


def test_max_tokens_gradient_checkpointing_and_bf16_autocast(
    tiny_lm: Path, corpus_dir: Path, tmp_path: Path
) -> None:
    # 2 blocks x 32 tokens per step: 100 tokens need 2 steps
    plain = train(
        _opts(tiny_lm, tmp_path / "plain", corpus_dir, train_steps=None, train_tokens=100)
    )
    assert plain.steps == 2 and plain.tokens == 128
    ckpt = train(
        _opts(
            tiny_lm,
            tmp_path / "gc",
            corpus_dir,
            train_steps=None,
            train_tokens=100,
            gradient_checkpointing=True,
        )
    )
    assert ckpt.losses == plain.losses  # recomputation changes memory, not the numbers
    a, b = _weights(tmp_path / "plain"), _weights(tmp_path / "gc")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    bf16 = train(
        _opts(tiny_lm, tmp_path / "bf16", corpus_dir, train_steps=2, mixed_precision="bf16")
    )
    assert all(abs(x - y) < 0.05 for x, y in zip(bf16.losses, plain.losses))
    assert _weights(tmp_path / "bf16")["model.embed_tokens.weight"].dtype == torch.float32
