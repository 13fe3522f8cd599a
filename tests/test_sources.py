"""Hub ids as model sources: only the needed files, pinned revisions, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gqa_retrofit.errors import ModelSourceError
from gqa_retrofit.sources import resolve_checkpoint_dir, resolve_config_file
from hub_server import USER

REPO = f"{USER}/tiny-llama"
SRC = str(Path(__file__).resolve().parents[1] / "src")
EXTRA = {  # files a real repo carries that a conversion does not need
    "pytorch_model.bin": b"not a pickle we would ever load",
    "optimizer.pt": b"x" * 100,
    "README.md": b"---\nlicense: mit\n---\n# tiny\n",
    "onnx/model.onnx": b"onnx",
}


def upload_tiny(server, tiny_dir: Path, repo: str = REPO) -> str:
    files = {p.name: p.read_bytes() for p in tiny_dir.iterdir() if p.is_file()}
    return server.add_repo(repo, {**files, **EXTRA})


def test_config_only(hub_server, tiny_llama_dir):
    upload_tiny(hub_server, tiny_llama_dir)
    path = resolve_config_file(REPO)
    assert path.read_bytes() == (tiny_llama_dir / "config.json").read_bytes()
    assert hub_server.downloaded(REPO) == ["config.json"]


def test_estimate_of_a_hub_id_fetches_config_json_only(hub_server, tiny_llama_dir, capsys):
    import json

    from gqa_retrofit.cli.main import main

    upload_tiny(hub_server, tiny_llama_dir)
    assert main(["estimate", REPO, "--json", "--context", "4k"]) == 0
    [entry] = json.loads(capsys.readouterr().out)["models"]
    assert (entry["model"], entry["attention"]["kv_heads"]) == (REPO, 2)
    assert hub_server.downloaded(REPO) == ["config.json"]
    assert [r.line for r in hub_server.requests if r.path.startswith(f"/{REPO}/")] == [
        f"HEAD /{REPO}/resolve/main/config.json -> 200",
        f"GET /{REPO}/resolve/main/config.json -> 200",
    ]


def test_checkpoint_only_needed_files_and_pinned_revision(hub_server, tiny_llama_dir):
    first = upload_tiny(hub_server, tiny_llama_dir)
    path = resolve_checkpoint_dir(REPO)
    needed = sorted(p.name for p in tiny_llama_dir.iterdir())  # config, weights, tokenizer
    assert "model.safetensors" in needed and "tokenizer.json" in needed
    assert sorted(p.name for p in path.iterdir()) == needed
    assert sorted(hub_server.downloaded(REPO)) == needed  # none of EXTRA
    assert path.name == first  # the snapshot of the commit the Hub reported

    # a new commit on main does not change what a pinned revision gives
    files = hub_server.files(REPO)
    hub_server._commit(hub_server.repos[REPO], "main", {**files, "config.json": b"{}"}, "update")
    pinned = resolve_checkpoint_dir(REPO, revision=first, weights=False)
    assert (pinned / "config.json").read_bytes() == (tiny_llama_dir / "config.json").read_bytes()
    assert resolve_config_file(REPO).read_bytes() == b"{}"


def test_hub_errors_are_typed_one_liners(hub_server, tiny_llama_dir):
    upload_tiny(hub_server, tiny_llama_dir)
    with pytest.raises(ModelSourceError, match=f"Hub model '{USER}/absent' not found"):
        resolve_config_file(f"{USER}/absent")
    with pytest.raises(ModelSourceError, match="revision not found"):
        resolve_checkpoint_dir(REPO, revision="v9")
    with pytest.raises(ModelSourceError, match="neither an existing path nor a Hub id"):
        resolve_config_file("../no-such-dir-gqa/../model")


def test_offline_uses_the_cache_or_says_why(hub_server, tiny_llama_dir, tmp_path):
    upload_tiny(hub_server, tiny_llama_dir)
    home = tmp_path / "home"
    script = (
        "import sys\n"
        "from gqa_retrofit.errors import ModelSourceError\n"
        "from gqa_retrofit.sources import resolve_config_file\n"
        "try:\n    print(resolve_config_file(sys.argv[1]))\n"
        "except ModelSourceError as err:\n    print('error:', err)\n"
    )
    env = dict(os.environ, HF_HOME=str(home), PYTHONPATH=SRC)
    online = subprocess.run(
        [sys.executable, "-c", script, REPO], env=env, capture_output=True, text=True, timeout=60
    )
    assert online.stdout.startswith(str(home))
    env["HF_HUB_OFFLINE"] = "1"
    offline = [
        subprocess.run(
            [sys.executable, "-c", script, name],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        for name in (REPO, f"{USER}/never-downloaded")
    ]
    assert offline[0] == online.stdout  # served from the HF cache
    assert offline[1] == (
        f"error: cannot resolve Hub model '{USER}/never-downloaded': HF_HUB_OFFLINE is set and "
        "it is not in the HF cache\n"
    )
