"""``--revision`` means one thing everywhere: the Hub revision of the model a command reads.

A Hub repo on the loopback stand-in holds two commits of a tiny llama with different weights;
``eval``, ``train`` and ``retrofit`` given the first commit read that commit (its files are the
ones downloaded, its numbers are those of the local copy), not ``main``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gqa_retrofit.cli.main import main
from hub_server import USER

REPO = f"{USER}/tiny-llama-revs"
TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune. "


def _two_commits(server, tmp_path: Path) -> tuple[str, Path]:
    """The repo with commit 1 = tiny llama (seed 0) and main = the same with seed 1."""
    from tiny_models import save_tiny_model

    first_dir = save_tiny_model(tmp_path / "first", "llama", seed=0)
    second_dir = save_tiny_model(tmp_path / "second", "llama", seed=1)
    first = server.add_repo(REPO, {p.name: p.read_bytes() for p in first_dir.iterdir()})
    files = {p.name: p.read_bytes() for p in second_dir.iterdir()}
    server._commit(server.repos[REPO], "main", files, "new weights")
    return first, first_dir


def _fetched_revisions(server) -> set[str]:
    prefix = f"/{REPO}/resolve/"
    return {
        r.path[len(prefix) :].split("/", 1)[0]
        for r in server.requests
        if r.method == "GET" and r.path.startswith(prefix) and r.path.endswith(".safetensors")
    }


def _eval_json(capsys, *args: str) -> dict:
    assert main(["eval", *args, "--eval-seq-len", "16", "--eval-windows", "2", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_reads_the_given_revision(hub_server, tmp_path: Path, capsys) -> None:
    first, first_dir = _two_commits(hub_server, tmp_path)
    text = tmp_path / "text.txt"
    text.write_text(TEXT * 8, encoding="utf-8")
    local = _eval_json(capsys, str(first_dir), "--eval-data", str(text))
    hub_server.clear_records()
    pinned = _eval_json(capsys, REPO, "--revision", first, "--eval-data", str(text))
    assert _fetched_revisions(hub_server) == {first}
    assert pinned["perplexity"] == local["perplexity"]
    latest = _eval_json(capsys, REPO, "--eval-data", str(text))
    assert latest["perplexity"] != local["perplexity"]  # main holds other weights


def test_train_reads_model_and_teacher_at_their_revisions(hub_server, tmp_path: Path) -> None:
    from gqa_retrofit.training import TrainOptions, train

    first, _ = _two_commits(hub_server, tmp_path)
    corpus = tmp_path / "train.txt"
    corpus.write_text(TEXT * 40, encoding="utf-8")
    options = TrainOptions.from_dict(
        {
            "model": REPO,
            "revision": first,
            "teacher": REPO,
            "teacher_revision": first,
            "out": str(tmp_path / "trained"),
            "train_data": [str(corpus)],
            "train_steps": 1,
            "seq_len": 16,
            "batch_size": 2,
            "warmup": 0,
        }
    )
    hub_server.clear_records()
    train(options.validate())
    assert _fetched_revisions(hub_server) == {first}
    state = json.loads((tmp_path / "trained" / "training_state.json").read_text())
    assert state["options"]["revision"] == state["options"]["teacher_revision"] == first


def test_retrofit_converts_and_benchmarks_the_given_revision(hub_server, tmp_path: Path) -> None:
    from gqa_retrofit.conversion.convert import convert_checkpoint
    from gqa_retrofit.pipeline.retrofit import retrofit

    first, first_dir = _two_commits(hub_server, tmp_path)
    hub_server.clear_records()
    result = retrofit(
        REPO,
        tmp_path / "run",
        kv_heads=1,
        method="mean",
        revision=first,
        base_model=f"{USER}/the-original",
        bench_contexts=[8],
        bench_new_tokens=2,
        bench_repeats=1,
    )
    assert _fetched_revisions(hub_server) == {first}
    manifest = json.loads((result.final_model / "gqa_retrofit.json").read_text())
    assert manifest["source"]["revision"] == first
    assert manifest["base_model"] == f"{USER}/the-original"
    assert "base_model: tester/the-original" in (result.final_model / "README.md").read_text()
    local = convert_checkpoint(first_dir, tmp_path / "local", kv_heads=1)
    weights = "model.safetensors"
    assert (result.final_model / weights).read_bytes() == (local.output / weights).read_bytes()


@pytest.mark.parametrize("command", ["convert", "retrofit"])
def test_base_model_must_be_a_hub_id(command: str, tmp_path: Path, capsys) -> None:
    from tiny_models import save_tiny_model

    src = save_tiny_model(tmp_path / "src", "llama")
    args = [command, str(src), str(tmp_path / "out"), "--kv-heads", "1", "--method", "mean"]
    capsys.readouterr()
    assert main([*args, "--base-model", "not a repo"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"gqa-retrofit {command}: error: --base-model 'not a repo' is not a Hub model id "
        "(owner/name)"
    ]
    assert not (tmp_path / "out").exists()


def test_convert_records_the_base_model(tmp_path: Path) -> None:
    from gqa_retrofit.pipeline.options import ConvertOptions
    from tiny_models import save_tiny_model

    src = save_tiny_model(tmp_path / "src", "llama")
    out = tmp_path / "out"
    options = {"src": str(src), "out": str(out), "kv_heads": 1, "base_model": "owner/base"}
    ConvertOptions.from_dict(options).run()
    manifest = json.loads((out / "gqa_retrofit.json").read_text())
    assert manifest["base_model"] == manifest["source"]["base_model"] == "owner/base"
