"""Model cards: YAML header via ModelCardData, body from the manifest, idempotent updates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gqa_retrofit.errors import ConversionError, ModelSourceError
from gqa_retrofit.hub.card import BEGIN_MARKER, END_MARKER, render_card, write_card
from hub_server import USER, validate_card_yaml

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _manifest(path: Path) -> dict:
    return json.loads((path / "gqa_retrofit.json").read_text())


def _set_manifest(path: Path, **changes) -> None:
    manifest = _manifest(path)
    manifest.update(changes)
    (path / "gqa_retrofit.json").write_text(json.dumps(manifest))


def test_card_parses_validates_and_carries_base_model_and_results(converted_dir, hub_server):
    from huggingface_hub import HfApi, ModelCard

    text = render_card(converted_dir, repo_id=f"{USER}/tiny-gqa")
    assert validate_card_yaml(text) == []
    HfApi(endpoint=hub_server.endpoint)._validate_yaml(text)  # through the real client
    card = ModelCard(text)
    data = card.data.to_dict()
    assert data["base_model"] == "tester/tiny-llama"
    assert data["base_model_relation"] == "finetune"
    assert data["library_name"] == "transformers"
    assert data["pipeline_tag"] == "text-generation"
    assert data["tags"] == ["gqa-retrofit", "gqa", "gqa-retrofit-mean", "llama"]
    # model-index holds this model's own result only (the source's is in the body table)
    [result] = card.data.eval_results
    assert (result.metric_type, result.metric_value, result.dataset_name) == (
        "perplexity",
        78.7,
        "persuasion",
    )
    assert "| persuasion | perplexity | 36.60 | 78.70 |" in text
    assert "> **Note.** This model's perplexity is 2× the source's" in text  # 78.7 / 36.6
    assert "| key/value heads | 2 | 1 |" in text
    assert f'from_pretrained("{USER}/tiny-gqa")' in text and "trust_remote_code" not in text
    assert "gqa-retrofit convert tester/tiny-llama OUT --kv-heads 1 --method mean" in text
    assert text.count(BEGIN_MARKER) == 1 and text.count(END_MARKER) == 1


def test_cost_table_and_plot_come_from_the_estimator(converted_dir):
    from gqa_retrofit.cost import estimate

    path = write_card(converted_dir, contexts=(4096, 8192))
    text = path.read_text()
    # the same numbers as estimating the source geometry with this model as its what-if
    config = json.loads((converted_dir / "config.json").read_text())
    source = dict(config, num_key_value_heads=2, head_dim=16, _name_or_path="tester/tiny-llama")
    report = estimate(source, contexts=(4096, 8192), what_if=[(4, 1, 16)])
    assert report.to_markdown() in text
    assert report.what_if[0].savings_percent(0)["kv_cache_bytes"] == 50.0
    assert "| ↳ what-if | 4/1x16 | 4K * | 512 KiB (−50%)" in text  # (* past max positions)
    plot = converted_dir / "gqa_retrofit_cost.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](gqa_retrofit_cost.png)" in text


def test_written_card_loads_back_with_modelcard_load(converted_dir):
    from huggingface_hub import ModelCard

    path = write_card(converted_dir, plot=False)
    card = ModelCard.load(path)
    assert card.data.base_model == "tester/tiny-llama"
    assert card.data.eval_results[0].metric_value == 78.7
    assert card.text.lstrip().startswith(BEGIN_MARKER)


def test_rewriting_is_idempotent_and_keeps_user_text(converted_dir):
    path = write_card(converted_dir)
    first, first_plot = path.read_bytes(), (converted_dir / "gqa_retrofit_cost.png").read_bytes()
    assert write_card(converted_dir).read_bytes() == first  # twice: the same files
    assert (converted_dir / "gqa_retrofit_cost.png").read_bytes() == first_plot

    text = first.decode()
    header_end = text.index("\n---\n") + len("\n---\n")
    edited = (
        "---\nlanguage: en\n"
        + text[4:header_end]  # a user YAML key
        + "\nMy introduction.\n\n"
        + text[header_end:]
        + "\n## Notes\n\nWritten by hand.\n"
    )
    path.write_text(edited)
    _set_manifest(converted_dir, method={"name": "pca"})  # something our section shows changes
    updated = write_card(converted_dir, plot=False).read_text()
    assert "My introduction." in updated and "## Notes\n\nWritten by hand." in updated
    assert updated.index("My introduction.") < updated.index(BEGIN_MARKER)
    assert updated.index(END_MARKER) < updated.index("## Notes")
    assert "language: en" in updated and "gqa-retrofit-pca" in updated
    assert "gqa-retrofit-mean" not in updated
    assert write_card(converted_dir, plot=False).read_text() == updated


def test_existing_card_without_markers_is_kept_below_our_section(converted_dir):
    (converted_dir / "README.md").write_text("---\nlicense: mit\n---\n# Old card\n\nText.\n")
    text = write_card(converted_dir, plot=False).read_text()
    assert text.index(END_MARKER) < text.index("# Old card\n\nText.")
    assert write_card(converted_dir, plot=False).read_text() == text


def test_license_is_inherited_from_the_source_card(converted_dir, tmp_path, hub_server):
    from huggingface_hub import ModelCard

    # a local source directory with its own card
    source = tmp_path / "source"
    source.mkdir()
    (source / "README.md").write_text("---\nlicense: mit\n---\n# Source\n")
    _set_manifest(converted_dir, source={"name": str(source)})
    assert ModelCard(render_card(converted_dir)).data.license == "mit"
    assert ModelCard(render_card(converted_dir)).data.base_model is None  # a path is no Hub id

    # a Hub source: the card's license, from the Hub's cardData
    hub_server.add_repo(f"{USER}/base", {"README.md": b"---\nlicense: apache-2.0\n---\n# Base\n"})
    _set_manifest(converted_dir, source={"name": f"{USER}/base"})
    data = ModelCard(render_card(converted_dir)).data
    assert (data.license, data.base_model) == ("apache-2.0", f"{USER}/base")
    assert ModelCard(render_card(converted_dir, license="other")).data.license == "other"

    # unknown when the source has no card
    _set_manifest(converted_dir, source={"name": f"{USER}/not-there"})
    assert ModelCard(render_card(converted_dir)).data.license is None


def test_training_datasets_and_custom_code(converted_dir):
    from huggingface_hub import ModelCard

    _set_manifest(
        converted_dir,
        training={
            "steps": 60,
            "tokens": 61440,
            "teacher": "tester/tiny-llama",
            "lr": 0.0003,
            "dataset_id": "tester/austen",
            "command": "gqa-retrofit train A B --steps 60",
        },
        evaluations=[
            {"model": "source", "dataset": "persuasion", "metric": "perplexity", "value": 36.6},
            {"model": "converted", "dataset": "persuasion", "metric": "perplexity", "value": 78.7},
            {"model": "trained", "dataset": "persuasion", "metric": "perplexity", "value": 56.2},
        ],
    )
    config = json.loads((converted_dir / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}
    (converted_dir / "config.json").write_text(json.dumps(config))
    text = render_card(converted_dir)
    card = ModelCard(text)
    assert card.data.datasets == ["tester/austen"]
    assert "distillation" in card.data.tags
    assert [r.metric_value for r in card.data.eval_results] == [56.2]
    assert "| steps | 60 |" in text and "| lr | 0.0003 |" in text
    assert "gqa-retrofit train A B --steps 60" in text
    assert "trust_remote_code=True" in text
    assert "| persuasion | perplexity | 36.60 | 78.70 | 56.20 |" in text
    assert "**Note.**" not in text  # trained to within 2× of the source


def test_custom_template(converted_dir, tmp_path):
    template = tmp_path / "mine.md.jinja"
    template.write_text(
        "---\n{{ card_data }}\n---\n# {{ facts.model_name }} from {{ facts.source }}\n"
    )
    text = render_card(converted_dir, template=template)
    assert text.endswith("---\n# tiny-gqa from tester/tiny-llama\n")
    with pytest.raises(ModelSourceError, match=r"card template .*nope\.jinja' does not exist"):
        render_card(converted_dir, template=tmp_path / "nope.jinja")


def test_not_a_converted_checkpoint(converted_dir, tmp_path):
    (converted_dir / "gqa_retrofit.json").unlink()
    with pytest.raises(ConversionError, match=r"has no gqa_retrofit\.json"):
        render_card(converted_dir)
    with pytest.raises(ModelSourceError, match=r"no config\.json"):
        render_card(tmp_path / "missing")


def test_cli_card_writes_and_reports_bad_input(converted_dir, tmp_path):
    import os

    env = dict(os.environ, PYTHONPATH=SRC)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "gqa_retrofit.cli.main",
            "card",
            str(converted_dir),
            "--repo-id",
            f"{USER}/x",
            "--context",
            "4k,8k",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(converted_dir / "README.md")
    assert f'from_pretrained("{USER}/x")' in (converted_dir / "README.md").read_text()
    bad = subprocess.run(
        [sys.executable, "-m", "gqa_retrofit.cli.main", "card", str(tmp_path / "nowhere")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"gqa-retrofit card: error: '{tmp_path / 'nowhere'}' is not a checkpoint directory "
        "(no config.json)"
    ]


def test_malformed_yaml_header_is_a_clear_error_and_the_card_is_kept(converted_dir):
    from gqa_retrofit.errors import ConfigError

    readme = converted_dir / "README.md"
    broken = "---\nlicense: [mit\nnotes: mine\n---\n# My card\n"
    readme.write_text(broken)
    with pytest.raises(ConfigError) as info:
        write_card(converted_dir, plot=False)
    assert str(info.value) == (
        f"{str(readme)!r} has a malformed YAML header (line 3): expected ',' or ']', but got "
        "':'; fix or remove the header between the --- lines (it is not overwritten)"
    )
    assert readme.read_text() == broken


def test_reversed_markers_do_not_make_the_card_grow(converted_dir):
    readme = converted_dir / "README.md"
    readme.write_text(f"# Mine\n\n{END_MARKER}\nuser text\n{BEGIN_MARKER}\n")
    first = write_card(converted_dir, plot=False).read_text()
    second = write_card(converted_dir, plot=False).read_text()
    third = write_card(converted_dir, plot=False).read_text()
    assert first == second == third
    assert first.count("user text") == 1 and first.count("## How to reproduce") == 1


def test_templates_render_in_a_sandbox(converted_dir, tmp_path):
    from gqa_retrofit.errors import ConfigError

    template = tmp_path / "evil.md.jinja"
    template.write_text("---\n{{ card_data }}\n---\n{{ facts.__init__.__globals__['os'] }}\n")
    with pytest.raises(ConfigError, match=r"failed to render: access to attribute '__init__'"):
        render_card(converted_dir, template=template)
    template.write_text(
        "---\n{{ card_data }}\n---\n{{ ''.__class__.__mro__[1].__subclasses__() }}\n"
    )
    with pytest.raises(ConfigError, match=r"failed to render: access to attribute '__class__'"):
        render_card(converted_dir, template=template)


def test_reproduce_section_records_calibration_and_training(converted_dir):
    calibration = {
        "sources": [{"name": "../data/persuasion.txt", "kind": "file"}],
        "tokens": 16384,
        "seed": 0,
    }
    training = {
        "steps": 40,
        "tokens": 81920,
        "teacher": "../src",
        "trainable": "attention",
        "options": {"lr": 0.0001, "batch_size": 4, "seq_len": 512, "out": "/x", "data": ["a"]},
    }
    _set_manifest(converted_dir, calibration=calibration, training=training)
    text = render_card(converted_dir)
    section = text[text.index("## How to reproduce") :]
    for row in (
        "| calibration data | `../data/persuasion.txt` |",
        "| calibration tokens | 16,384 |",
        "| calibration seed | 0 |",
        "| training steps | 40 |",
        "| training teacher | ../src |",
        "| training option `lr` | 0.0001 |",
        "| training option `batch_size` | 4 |",
        "| training option `seq_len` | 512 |",
    ):
        assert row in section, row
    assert "`out`" not in section


def test_the_embedded_models_origin_is_on_the_card(converted_dir):
    origin = {
        "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "format": "dequantized Q4_1 GGUF",
        "note": "SmolLM2-135M-Instruct as a Q4_1 GGUF, dequantized to fp32",
    }
    _set_manifest(
        converted_dir,
        source={"name": "../SmolLM2-135M-Instruct", "origin": origin},
        base_model=origin["base_model"],
    )
    text = render_card(converted_dir)
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in text
    assert (
        "> **Source weights.** The source is SmolLM2-135M-Instruct as a Q4_1 GGUF, dequantized "
        "to fp32; its Hub origin is [HuggingFaceTB/SmolLM2-135M-Instruct]"
    ) in text


def test_geometry_table_from_manifest_and_config(converted_dir):
    """Both sides are one ``arch.geometry.Geometry``: layers and the after side's heads come
    from config.json when the manifest lacks them; an unrecorded source side shows ``?``."""
    from gqa_retrofit.arch.geometry import Geometry
    from gqa_retrofit.errors import ConfigError
    from gqa_retrofit.hub.card import gather_facts

    facts = gather_facts(converted_dir, license="")
    assert facts.before == Geometry(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16)
    assert facts.after == Geometry(layers=2, hidden=64, heads=4, kv_heads=1, head_dim=16)
    _set_manifest(converted_dir, heads={"before": {"heads": 4}})
    facts = gather_facts(converted_dir, license="")
    assert facts.before is None and facts.after == Geometry(2, 64, 4, 1, 16)
    with pytest.raises(ConfigError, match="does not record the head counts"):
        render_card(converted_dir, license="")
