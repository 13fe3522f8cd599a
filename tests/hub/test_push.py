"""push_to_hub and ``gqa-retrofit push`` against the stand-in, through the real client."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from gqa_retrofit.errors import HubError, ModelSourceError
from gqa_retrofit.hub.push import push_to_hub
from hub_server import USER, WRITE_TOKEN

REPO = f"{USER}/tiny-gqa"
SRC = str(Path(__file__).resolve().parents[2] / "src")


def _env(server, *, home: Path, token: str | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HF_TOKEN", None)
    env.update(HF_HOME=str(home), HF_ENDPOINT=server.endpoint, PYTHONPATH=SRC, **extra)
    if token:
        env["HF_TOKEN"] = token
    return env


def _local_logits(checkpoint: Path) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        return model(torch.arange(3, 19).unsqueeze(0)).logits


LOAD_WITHOUT_THIS_PACKAGE = textwrap.dedent(
    """
    import sys, torch
    sys.modules["gqa_retrofit"] = None  # this package is not importable here
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM
    native, custom, out = sys.argv[1:4]
    ids = torch.arange(3, 19).unsqueeze(0)
    logits = {}
    model = AutoModelForCausalLM.from_pretrained(native).eval()
    with torch.no_grad():
        logits["native"] = model(ids).logits
    try:
        AutoModelForCausalLM.from_pretrained(custom)
    except ValueError as err:
        assert "trust_remote_code" in str(err), err
    else:
        raise SystemExit("a custom type loaded without trust_remote_code")
    model = AutoModelForCausalLM.from_pretrained(custom, trust_remote_code=True).eval()
    assert type(model).__name__ == "GPT2GQAForCausalLM", type(model)
    with torch.no_grad():
        logits["custom"] = model(ids).logits
    save_file({k: v.contiguous() for k, v in logits.items()}, out)
    """
)


def _custom_type_checkpoint(out: Path) -> torch.nn.Module:
    """A tiny gpt2 turned into the custom ``gpt2_gqa`` type (1 KV head), saved with its code."""
    import json

    from gqa_retrofit.conversion.live import patch_model
    from tiny_models import tiny_model

    model = tiny_model("gpt2")
    patch_model(model, kv_heads=1)  # gpt2 has no native GQA: a custom type with auto_map
    model.save_pretrained(out)
    (out / "gqa_retrofit.json").write_text(
        json.dumps(
            {
                "source": {"name": "tester/tiny-gpt2"},
                "method": {"name": "mean"},
                "heads": {
                    "before": {"heads": 4, "kv_heads": 4, "head_dim": 16},
                    "after": {"heads": 4, "kv_heads": 1, "head_dim": 16},
                },
            }
        )
    )
    return model.eval()


def test_round_trip_gives_equal_logits_in_a_fresh_process(hub_server, converted_dir, tmp_path):
    from safetensors.torch import load_file

    url = push_to_hub(converted_dir, REPO, verify=False)
    assert url == f"{hub_server.endpoint}/{REPO}"
    files = hub_server.files(REPO)
    assert {"config.json", "model.safetensors", "gqa_retrofit.json", "README.md"} <= set(files)
    assert files["model.safetensors"] == (converted_dir / "model.safetensors").read_bytes()
    # the card was written locally too, and nothing in the repo holds the token
    assert (converted_dir / "README.md").read_bytes() == files["README.md"]
    assert not [p for p, data in files.items() if WRITE_TOKEN.encode() in data]

    custom_repo = f"{USER}/tiny-gpt2-gqa"
    custom_model = _custom_type_checkpoint(tmp_path / "tiny-gpt2-gqa")
    push_to_hub(tmp_path / "tiny-gpt2-gqa", custom_repo, verify=False)
    assert "trust_remote_code=True" in hub_server.files(custom_repo)["README.md"].decode()

    # a fresh process, empty HF cache, no gqa_retrofit: plain transformers loads both
    out = tmp_path / "remote-logits.safetensors"
    run = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_THIS_PACKAGE, REPO, custom_repo, str(out)],
        env=_env(hub_server, home=tmp_path / "fresh-hf-home"),
        stdin=subprocess.DEVNULL,  # (transformers would otherwise prompt for trust)
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    remote = load_file(out)
    assert torch.equal(remote["native"], _local_logits(converted_dir))
    with torch.no_grad():
        assert torch.equal(remote["custom"], custom_model(torch.arange(3, 19).unsqueeze(0)).logits)
    downloaded = hub_server.downloaded(REPO)
    assert "model.safetensors" in downloaded and "gqa_retrofit.json" not in downloaded
    assert "modeling_gpt2_gqa.py" in hub_server.downloaded(custom_repo)


PUSH_ONE_FILE_PER_COMMIT = textwrap.dedent(
    """
    import sys
    from huggingface_hub import _upload_pipeline
    from gqa_retrofit.hub.push import push_to_hub
    _upload_pipeline.REGULAR_CONTENT_BYTES_BUDGET = 1  # the client batches commits by bytes
    push_to_hub(sys.argv[1], sys.argv[2], verify=False)
    """
)


def test_rerun_after_killed_upload_sends_only_the_rest(
    hub_server, converted_dir, tmp_path, monkeypatch
):
    from huggingface_hub import _upload_pipeline

    # a push (one file per commit) is killed while its third commit is in flight
    hub_server.hang_commit_after = 2
    proc = subprocess.Popen(
        [sys.executable, "-c", PUSH_ONE_FILE_PER_COMMIT, str(converted_dir), REPO],
        env=_env(hub_server, home=tmp_path / "home", token=WRITE_TOKEN),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not hub_server.commit_hanging.wait(timeout=0.2):
            assert proc.poll() is None, f"the push ended early: {proc.communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, "the push never reached its third commit"
    finally:
        proc.kill()
        proc.wait(timeout=30)
        hub_server.release_commit.set()
    first = hub_server.committed_paths(REPO)
    local = sorted(p.name for p in converted_dir.iterdir())
    assert len(first) == 2 and set(first) < set(local)

    hub_server.clear_records()
    monkeypatch.setattr(_upload_pipeline, "REGULAR_CONTENT_BYTES_BUDGET", 1)
    push_to_hub(converted_dir, REPO, verify=False)
    second = hub_server.committed_paths(REPO)
    assert sorted(first + second) == local  # every file sent exactly once over both runs
    assert {p: d for p, d in hub_server.files(REPO).items() if p != ".gitattributes"} == {
        p: (converted_dir / p).read_bytes() for p in local
    }

    hub_server.clear_records()
    push_to_hub(converted_dir, REPO, verify=False)
    assert hub_server.committed_paths(REPO) == []  # nothing left to send


def test_branch_pr_and_private(hub_server, converted_dir, tmp_path):
    url = push_to_hub(converted_dir, REPO, revision="dev", commit_message="to dev", verify=False)
    assert url == f"{hub_server.endpoint}/{REPO}/tree/dev"
    assert "model.safetensors" in hub_server.files(REPO, "dev")
    assert "model.safetensors" not in hub_server.files(REPO, "main")
    assert hub_server.repos[REPO].commits[hub_server.repos[REPO].refs["dev"]].message == "to dev"

    pr_url = push_to_hub(converted_dir, f"{USER}/other", create_pr=True, verify=False)
    assert pr_url == f"{hub_server.endpoint}/{USER}/other/discussions/1"
    assert "model.safetensors" in hub_server.files(f"{USER}/other", "refs/pr/1")
    assert "model.safetensors" not in hub_server.files(f"{USER}/other", "main")

    push_to_hub(converted_dir, f"{USER}/hidden", private=True, verify=False)
    assert hub_server.repos[f"{USER}/hidden"].private


def test_refused_pushes_are_one_line_errors(hub_server, converted_dir, monkeypatch):
    with pytest.raises(HubError, match="may not write to 'someone-else/x' \\(403\\)"):
        push_to_hub(converted_dir, "someone-else/x", verify=False)
    with pytest.raises(HubError, match="rejected the token \\(401\\)"):
        push_to_hub(converted_dir, REPO, token="hf_wrong", verify=False)
    with pytest.raises(HubError, match="invalid repo id 'no-owner'"):
        push_to_hub(converted_dir, "no-owner", verify=False)
    with pytest.raises(ModelSourceError, match=r"no config\.json"):
        push_to_hub(converted_dir / "config.json", REPO, verify=False)
    (converted_dir / "README.md").write_text("---\nlicense: [oops\n---\n# my own card\n")
    with pytest.raises(
        HubError, match=r"model card of 'tester/tiny-gqa' is invalid: .*does not parse"
    ):
        push_to_hub(converted_dir, REPO, verify=False)
    assert hub_server.committed_paths(REPO) == []
    hub_server.repos.clear()
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_TOKEN_PATH", str(converted_dir / "no-token-file"))
    with pytest.raises(HubError, match="no Hugging Face token"):
        push_to_hub(converted_dir, REPO, verify=False)
    assert hub_server.repos == {}


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gqa_retrofit.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_push_prints_the_url_never_the_token(hub_server, converted_dir, tmp_path):
    env = _env(hub_server, home=tmp_path / "home")
    run = _cli(
        ["--quiet", "push", str(converted_dir), REPO, "--no-verify", "--token", WRITE_TOKEN], env
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"{hub_server.endpoint}/{REPO}\n"
    assert WRITE_TOKEN not in run.stdout + run.stderr
    assert "model.safetensors" in hub_server.files(REPO)


@pytest.mark.parametrize("failure", ["offline", "unreachable"])
def test_cli_offline_and_unreachable_are_one_line_errors(
    hub_server, converted_dir, tmp_path, failure
):
    import socket

    env = _env(hub_server, home=tmp_path / "home", token=WRITE_TOKEN)
    if failure == "offline":
        env["HF_HUB_OFFLINE"] = "1"
        expected = "HF_HUB_OFFLINE is set"
    else:
        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{port}"
        expected = f"cannot reach the Hub at http://127.0.0.1:{port}"
    run = _cli(["push", str(converted_dir), REPO, "--no-verify"], env)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], run.stderr
    assert "Traceback" not in run.stderr and WRITE_TOKEN not in run.stderr


def test_push_of_a_train_output_uploads_only_model_card_report_and_plots(
    hub_server, tmp_path
) -> None:
    import json

    from gqa_retrofit.conversion.convert import convert_checkpoint
    from gqa_retrofit.conversion.verify import verify_checkpoint
    from gqa_retrofit.hub.push import publishable_files
    from gqa_retrofit.training import TrainOptions, train
    from tests.training.helpers import save_tiny_lm, write_corpus

    src = save_tiny_lm(tmp_path / "src")
    convert_checkpoint(src, tmp_path / "converted", kv_heads=1)
    write_corpus(tmp_path / "corpus")
    out = tmp_path / "trained"
    options = {"model": str(tmp_path / "converted"), "out": str(out), "seq_len": 32}
    options.update(data=[str(tmp_path / "corpus" / "*.txt")], batch_size=2, max_steps=2)
    train(TrainOptions.from_dict({**options, "warmup": 0, "save_every": 1}))
    assert any(out.glob("checkpoints/*/optimizer.pt")) and (out / "training_state.json").is_file()
    assert json.loads((out / "config.json").read_text()).get("use_cache", True) is True
    assert verify_checkpoint(out, load=False).ok  # the manifest hashes the trained files
    (out / "report").mkdir()
    (out / "report" / "training_curve.png").write_bytes(b"\x89PNG plot")
    (out / "retrofit_report.md").write_text("# report\n")
    (out / "notes.txt").write_text("private notes")

    push_to_hub(out, f"{USER}/trained")
    uploaded = sorted(set(hub_server.files(f"{USER}/trained")) - {".gitattributes"})
    assert uploaded == sorted(
        [
            "README.md",
            "config.json",
            "generation_config.json",
            "gqa_retrofit.json",
            "gqa_retrofit_cost.png",
            "model.safetensors",
            "report/training_curve.png",
            "retrofit_report.md",
            "tokenizer.json",
            "tokenizer_config.json",
        ]
    )
    assert uploaded == sorted(publishable_files(out))

    secret = tmp_path / "secret.txt"
    secret.write_text("outside the folder")
    (out / "tokenizer.json").unlink()
    (out / "tokenizer.json").symlink_to(secret)
    with pytest.raises(HubError) as info:
        push_to_hub(out, f"{USER}/linked")
    assert str(info.value) == (
        f"'tokenizer.json' in {str(out)!r} is a symbolic link to {str(secret)!r}, outside the "
        "folder: copy the file into the folder or remove the link"
    )
    assert f"{USER}/linked" not in hub_server.repos
