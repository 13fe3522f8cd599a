"""Model cards for retrofitted checkpoints: ``README.md`` from the manifest and the estimator.

The card is rendered from a Jinja template (``model_cards/default.md.jinja`` at the top of the
repository, shipped in the wheel as ``gqa_retrofit/model_cards/``, or the user's ``template=``)
in a sandboxed Jinja environment (a template cannot reach Python internals), and parsed by
``huggingface_hub.ModelCard``, so the YAML header is written by ``ModelCardData``:
``base_model`` (+ ``base_model_relation: finetune``),
``library_name: transformers``, ``pipeline_tag: text-generation``, ``tags``, ``license``
(inherited from the source model's card when known), ``datasets`` (Hub dataset ids used for
calibration/training) and ``model-index`` (from the recorded evaluations).

Inputs, all read from the checkpoint directory:

- ``gqa_retrofit.json`` (the converter's manifest): ``source``, ``method``, ``heads`` (before,
  after), ``calibration``, ``timings``; optionally ``training`` (the trainer's record) and
  ``evaluations``, a list of ``{"model": "source"|"converted"|"trained", "dataset": str,
  "metric": "perplexity", "value": float, ...}`` records (optional keys: ``dataset_id``
  (a Hub dataset id), ``split``, ``tokens``, ``seq_len``).
- ``config.json`` (``auto_map`` decides whether loading needs ``trust_remote_code``).

Our part of the card sits between :data:`BEGIN_MARKER` and :data:`END_MARKER`. Updating an
existing card replaces only that part and our YAML keys: text outside the markers and other YAML
keys are kept, and rendering twice gives the same file.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..arch.geometry import Geometry
from ..cost.report import DEFAULT_CONTEXTS
from ..errors import ConfigError, ConversionError, ModelSourceError
from ..sources import HUB_REPO_ID, check_hub_id

CARD_FILENAME = "README.md"
MANIFEST_FILENAME = "gqa_retrofit.json"
PLOT_FILENAME = "gqa_retrofit_cost.png"
BEGIN_MARKER = "<!-- gqa-retrofit:begin -->"
END_MARKER = "<!-- gqa-retrofit:end -->"
# The single source of the template is the repository's top-level model_cards/ folder;
# gqa_retrofit/model_cards is a link to it in a checkout and a copy of it in the wheel.
DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "model_cards" / "default.md.jinja"
# YAML keys the card owns; every other key of an existing card is kept as the user wrote it.
OWNED_KEYS = (
    "base_model",
    "base_model_relation",
    "library_name",
    "pipeline_tag",
    "tags",
    "datasets",
    "model-index",
    "license",
)
_HEADER = re.compile(r"\A---\n(.*?)\n---[ \t]*\n?", re.DOTALL)


@dataclass
class CardFacts:
    """Everything the template needs, gathered from the checkpoint directory."""

    model_name: str
    source: str
    source_is_hub: bool
    source_revision: str | None
    method: str
    method_options: dict[str, Any]
    before: Geometry | None  # None: the manifest does not record every number
    after: Geometry | None
    model_type: str
    custom_code: bool
    calibration: dict[str, Any] | None
    timings: dict[str, float]
    training: dict[str, Any] | None
    evaluations: list[dict[str, Any]]
    datasets: list[str]
    license: str | None
    manifest: dict[str, Any] = field(repr=False)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelSourceError(f"{str(path)!r} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{str(path)!r} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{str(path)!r} must hold a JSON object")
    return data


def _first(mapping: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if mapping.get(key) is not None:
            return mapping[key]
    return None


def _config_numbers(config: dict[str, Any]) -> dict[str, Any]:
    """Layers, hidden size and heads as ``config.json`` states them (None where it does not)."""
    heads = _first(config, "num_attention_heads", "n_head")
    hidden = _first(config, "hidden_size", "n_embd", "d_model")
    head_dim = config.get("head_dim") or (
        hidden // heads if isinstance(hidden, int) and isinstance(heads, int) and heads else None
    )
    return {
        "layers": _first(config, "num_hidden_layers", "n_layer"),
        "hidden": hidden,
        "heads": heads,
        "kv_heads": config.get("num_key_value_heads", heads),
        "head_dim": head_dim,
    }


def _recorded_geometry(
    record: dict[str, Any] | None, config: dict[str, Any], *, is_config: bool
) -> Geometry | None:
    """The geometry a manifest records for one side of the conversion; None when a number is
    unknown (the card shows ``?``).

    Layers and hidden size do not change in a conversion: a record without them takes them from
    ``config.json``. ``is_config``: this side is the one ``config.json`` describes (after), so
    its heads come from there too when the record lacks them.
    """
    record = record or {}
    values = {
        "layers": _first(record, "layers", "num_hidden_layers"),
        "hidden": _first(record, "hidden", "hidden_size"),
        "heads": _first(record, "heads", "num_attention_heads", "n_heads", "q_heads"),
        "kv_heads": _first(record, "kv_heads", "num_key_value_heads", "n_kv_heads"),
        "head_dim": _first(record, "head_dim", "d_head"),
    }
    stated = _config_numbers(config)
    for name, value in values.items():
        if value is None and (is_config or name in ("layers", "hidden")):
            values[name] = stated[name]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values.values()):
        return None
    return Geometry(**values)


def _source_fields(manifest: dict[str, Any]) -> tuple[str, str | None]:
    source = manifest.get("source")
    if isinstance(source, str):
        return source, None
    if isinstance(source, dict):
        name = _first(source, "id", "repo_id", "name", "path", "model")
        revision = _first(source, "revision", "commit")
        return str(name or "unknown"), revision
    return "unknown", None


def _hub_datasets(manifest: dict[str, Any]) -> list[str]:
    """Hub dataset ids recorded for calibration and training (``dataset_id``/``datasets`` keys;
    local text files are described in the body, not listed here)."""
    found: set[str] = set()
    for record in (manifest.get("calibration"), manifest.get("training")):
        if not isinstance(record, dict):
            continue
        for key in ("dataset_id", "datasets"):
            value = record.get(key)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str) and HUB_REPO_ID.match(item) and not Path(item).exists():
                    found.add(item)
    return sorted(found)


def source_license(source: str, *, revision: str | None = None) -> str | None:
    """The ``license`` of the source model's card (a local ``README.md``, or the Hub's
    ``cardData`` for a Hub id), or None when unknown.

    The Hub is asked once, without retries (``HF_ENDPOINT``, ``HF_TOKEN`` and
    ``HF_HUB_OFFLINE`` honoured); when it cannot be reached the license stays unknown and the
    card says to check the base model's license.
    """
    path = Path(source)
    if path.is_dir():
        readme = path / CARD_FILENAME
        if not readme.is_file():
            return None
        meta, _ = _split(readme.read_text(encoding="utf-8", errors="replace"))
        value = meta.get("license")
    elif HUB_REPO_ID.match(source):
        from huggingface_hub import HfApi

        try:
            info = HfApi().model_info(source, revision=revision)
        except Exception:
            return None
        value = info.card_data.get("license") if info.card_data is not None else None
    else:
        return None
    return value if isinstance(value, str) else None


def gather_facts(
    checkpoint_dir: str | os.PathLike[str],
    *,
    license: str | None = None,
    base_model: str | None = None,
) -> CardFacts:
    """Read the manifest and config of a converted checkpoint into :class:`CardFacts`.

    Raises:
        ModelSourceError: the directory or its ``config.json`` is missing.
        ConversionError: there is no ``gqa_retrofit.json`` manifest.
        ConfigError: a file is not valid JSON.
    """
    folder = Path(checkpoint_dir)
    if not (folder / "config.json").is_file():
        raise ModelSourceError(
            f"{str(checkpoint_dir)!r} is not a checkpoint directory (no config.json)"
        )
    if not (folder / MANIFEST_FILENAME).is_file():
        raise ConversionError(
            f"{str(checkpoint_dir)!r} has no {MANIFEST_FILENAME}: cards are rendered for "
            "checkpoints written by gqa-retrofit convert/train"
        )
    from .._fs import portable_paths

    # an older manifest may name local absolute paths: the card shows them relative to it
    manifest = portable_paths(read_json(folder / MANIFEST_FILENAME), folder)
    config = read_json(folder / "config.json")
    source, revision = _source_fields(manifest)
    method_record = manifest.get("method")
    if isinstance(method_record, dict):
        method = str(_first(method_record, "name", "method") or "unknown")
        options = {
            k: v
            for k, v in method_record.items()
            if k not in ("name", "method", "needs_calibration") and v not in (None, {}, [])
        }
    else:
        method, options = str(method_record or "unknown"), {}
    heads = manifest.get("heads") or {}
    before = _recorded_geometry(heads.get("before"), config, is_config=False)
    after = _recorded_geometry(heads.get("after"), config, is_config=True)
    if base_model is not None:
        source = check_hub_id(base_model, what="base model")
    elif isinstance(manifest.get("base_model"), str):
        source = manifest["base_model"]
    is_hub = bool(HUB_REPO_ID.match(source)) and not Path(source).exists()
    if license is None:
        local = folder / source  # a local source is recorded relative to the checkpoint
        lookup = str(local) if not is_hub and local.is_dir() else source
        license = manifest.get("license") or source_license(lookup, revision=revision)
    evaluations = [e for e in manifest.get("evaluations") or [] if isinstance(e, dict)]
    return CardFacts(
        model_name=folder.resolve().name,
        source=source,
        source_is_hub=is_hub,
        source_revision=revision,
        method=method,
        method_options=options,
        before=before,
        after=after,
        model_type=str(config.get("model_type", "unknown")),
        custom_code=bool(config.get("auto_map")),
        calibration=manifest.get("calibration"),
        timings=dict(manifest.get("timings") or {}),
        training=manifest.get("training"),
        evaluations=evaluations,
        datasets=_hub_datasets(manifest),
        license=license,
        manifest=manifest,
    )


# -- pieces of the body --------------------------------------------------------------------------


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _fmt_number(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        tiny_or_huge = value != 0 and (abs(value) < 0.01 or abs(value) >= 1e5)
        return f"{value:.4g}" if tiny_or_huge else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def quality_note(evaluations: list[dict[str, Any]]) -> str | None:
    """A warning when this model's perplexity is far above the source's (untrained pooling)."""
    by_model: dict[str, float] = {}
    for record in evaluations:
        if record.get("metric", "perplexity") == "perplexity" and isinstance(
            record.get("value"), (int, float)
        ):
            by_model.setdefault(str(record.get("model", "converted")), float(record["value"]))
    source = by_model.get("source")
    mine = by_model.get("trained", by_model.get("converted"))
    if source is None or mine is None or mine <= 2 * source:
        return None
    return (
        f"This model's perplexity is {mine / source:,.0f}× the source's: head pooling without "
        "enough training loses much of the model's quality. Uptrain it (`gqa-retrofit train`) "
        "before using it for anything but experiments."
    )


def retrieval_note(evaluations: list[dict[str, Any]]) -> str | None:
    """A warning when the final model lost the source's in-context retrieval (probes recorded)."""
    from ..evaluation.retrieval_verdict import retrieval_note as note

    return note(evaluations)


def evaluation_table(evaluations: list[dict[str, Any]]) -> str:
    """Markdown table: one row per (dataset, metric), one column per evaluated model."""
    if not evaluations:
        return ""
    models: list[str] = []
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for record in evaluations:
        model = str(record.get("model", "converted"))
        if model not in models:
            models.append(model)
        key = (str(record.get("dataset", "?")), str(record.get("metric", "perplexity")))
        rows.setdefault(key, {})[model] = record.get("value")
    lines = ["| dataset | metric | " + " | ".join(models) + " |"]
    lines.append("|---|---|" + "---:|" * len(models))
    for (dataset, metric), values in rows.items():
        cells = [_fmt_number(values[m]) if m in values else "–" for m in models]
        lines.append(f"| {dataset} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def eval_results(facts: CardFacts) -> list[Any]:
    """``EvalResult`` objects (model-index) for this model's own evaluations."""
    from huggingface_hub import EvalResult

    own = [e for e in facts.evaluations if e.get("model", "converted") not in ("source", "base")]
    if own and any(e.get("model") == "trained" for e in own):
        own = [e for e in own if e.get("model") == "trained"]
    results = []
    for record in own:
        if not isinstance(record.get("value"), (int, float)):
            continue
        dataset = str(record.get("dataset", "text"))
        results.append(
            EvalResult(
                task_type="text-generation",
                task_name="Causal language modeling",
                dataset_type=str(record.get("dataset_id") or dataset),
                dataset_name=dataset,
                dataset_split=record.get("split"),
                metric_type=str(record.get("metric", "perplexity")),
                metric_name=str(record.get("metric", "perplexity")).capitalize(),
                metric_value=round(float(record["value"]), 4),
            )
        )
    return results


def card_data(facts: CardFacts) -> Any:
    """The ``ModelCardData`` of the YAML header."""
    from huggingface_hub import ModelCardData

    tags = ["gqa-retrofit", "gqa", f"gqa-retrofit-{facts.method}", facts.model_type]
    if facts.training:
        tags.append("distillation" if facts.training.get("teacher") else "uptraining")
    results = eval_results(facts)
    return ModelCardData(
        base_model=facts.source if facts.source_is_hub else None,
        base_model_relation="finetune" if facts.source_is_hub else None,
        library_name="transformers",
        pipeline_tag="text-generation",
        license=facts.license,
        tags=tags,
        datasets=facts.datasets or None,
        model_name=facts.model_name if results else None,
        eval_results=results or None,
    )


def cost_report(
    facts: CardFacts, config_path: Path, contexts: tuple[int, ...] = DEFAULT_CONTEXTS
) -> Any:
    """The estimator's report of the source geometry, with this model as its what-if.

    The source is costed from this checkpoint's config with the recorded pre-conversion head
    geometry (every other dimension is unchanged by a retrofit), so no source download is needed
    and the what-if's savings are those of the retrofit.

    Raises:
        ConfigError: the geometry before or after the conversion is unknown.
    """
    from ..cost import estimate

    before, after = facts.before, facts.after
    if before is None or after is None:
        raise ConfigError(
            "the manifest does not record the head counts before and after the conversion "
            "(heads.before / heads.after): cannot cost the retrofit"
        )
    config = read_json(config_path)
    config.update(
        num_attention_heads=before.heads,
        num_key_value_heads=before.kv_heads,
        _name_or_path=facts.source,  # the report's label
    )
    config["head_dim"] = before.head_dim
    report = estimate(
        config, contexts=contexts, what_if=[(after.heads, after.kv_heads, after.head_dim)]
    )
    return report


def cost_table(
    facts: CardFacts, config_path: Path, contexts: tuple[int, ...] = DEFAULT_CONTEXTS
) -> str:
    """Markdown cost table: the source and this model at each context, savings in percent."""
    return str(cost_report(facts, config_path, contexts).to_markdown())


def write_cost_plot(
    checkpoint_dir: str | os.PathLike[str],
    *,
    base_model: str | None = None,
    contexts: tuple[int, ...] = DEFAULT_CONTEXTS,
) -> Path:
    """Plot KV cache and decode FLOPs vs context (source and this model) next to the card.

    Returns:
        The path of the PNG (``gqa_retrofit_cost.png``), which the card embeds.
    """
    from ..cost import plot_reports

    folder = Path(checkpoint_dir)
    facts = gather_facts(folder, license="", base_model=base_model)  # "": no license lookup
    report = cost_report(facts, folder / "config.json", contexts)
    return Path(plot_reports([report], folder / PLOT_FILENAME, title=f"{facts.model_name}"))


def reproduce_commands(facts: CardFacts) -> list[str]:
    """The exact commands recorded in the manifest, or the equivalent convert/train commands."""
    recorded = facts.manifest.get("commands") or facts.manifest.get("command")
    if isinstance(recorded, str):
        commands = [recorded]
    elif isinstance(recorded, list):
        commands = [str(c) for c in recorded]
    else:
        parts = ["gqa-retrofit convert", facts.source, "OUT"]
        before, after = facts.before, facts.after
        if after is not None:
            parts.append(f"--kv-heads {after.kv_heads}")
        if after is not None and (before is None or after.heads != before.heads):
            parts.append(f"--heads {after.heads}")
        parts.append(f"--method {facts.method}")
        if facts.source_revision and facts.source_is_hub:
            parts.append(f"--revision {facts.source_revision}")
        commands = [" ".join(parts)]
    training = facts.training or {}
    train_cmd = training.get("command")
    if isinstance(train_cmd, str) and train_cmd not in commands:
        commands.append(train_cmd)
    return commands


def reproduce_settings(facts: CardFacts) -> list[tuple[str, str]]:
    """What the reproduce section records besides the commands: calibration and training.

    Calibration: its sources (relative paths or Hub ids), tokens and seed. Training: steps,
    tokens, teacher and every scalar option the run recorded (learning rate, batch size, ...).
    """
    rows: list[tuple[str, str]] = []
    calibration = facts.calibration or {}
    if calibration:
        names = [
            str(src.get("name", "?")) if isinstance(src, dict) else str(src)
            for src in calibration.get("sources") or calibration.get("files") or []
        ]
        rows.append(("calibration data", ", ".join(f"`{n}`" for n in names) or "?"))
        tokens = calibration.get("tokens", calibration.get("requested_tokens"))
        if tokens is not None:
            rows.append(("calibration tokens", _fmt_number(tokens)))
        if calibration.get("seed") is not None:
            rows.append(("calibration seed", str(calibration["seed"])))
    training = facts.training or {}
    for key in ("steps", "tokens", "teacher", "trainable", "data_sources"):
        value = training.get(key)
        if value not in (None, "", []):
            shown = ", ".join(map(str, value)) if isinstance(value, list) else _fmt_number(value)
            rows.append((f"training {key.replace('_', ' ')}", shown))
    options = training.get("options") or {}
    for key, value in sorted(options.items()):
        if key in ("out", "model", "resume", "token") or isinstance(value, (dict, list)):
            continue
        if value is not None:
            rows.append((f"training option `{key}`", _fmt_number(value)))
    return rows


def render_card(
    checkpoint_dir: str | os.PathLike[str],
    *,
    template: str | os.PathLike[str] | None = None,
    repo_id: str | None = None,
    license: str | None = None,
    base_model: str | None = None,
    contexts: tuple[int, ...] = DEFAULT_CONTEXTS,
) -> str:
    """Render the model card of a retrofitted checkpoint (the text of its ``README.md``).

    Args:
        checkpoint_dir: output of ``convert`` or ``train`` (``config.json`` + manifest).
        template: a Jinja template path; defaults to the packaged ``default.md.jinja``. It gets
            ``card_data`` (the YAML) and the variables documented in ``docs/publish.md``.
        repo_id: the Hub id the card will live at (used in the loading snippet).
        license: overrides the license inherited from the source card.
        base_model: the source's Hub id when it was converted from a local copy (else the
            manifest's ``source``, or its ``base_model`` key, is used).
        contexts: context lengths of the cost table.

    Returns:
        The card text; with the default template our part sits between the markers.

    Raises:
        ModelSourceError: not a checkpoint directory, or the template does not exist.
        ConversionError: no ``gqa_retrofit.json`` manifest.
        ConfigError: the template does not render.
    """
    import jinja2
    from huggingface_hub import ModelCard
    from jinja2.sandbox import SandboxedEnvironment

    from .._version import __version__

    template_path = Path(template) if template is not None else DEFAULT_TEMPLATE
    if not template_path.is_file():
        raise ModelSourceError(f"card template {str(template_path)!r} does not exist")
    folder = Path(checkpoint_dir)
    facts = gather_facts(folder, license=license, base_model=base_model)
    data = card_data(facts)
    try:
        environment = SandboxedEnvironment()  # no attribute walks into Python internals
        template_obj = environment.from_string(template_path.read_text(encoding="utf-8"))
        content = template_obj.render(
            card_data=data.to_yaml(),
            facts=facts,
            repo_id=repo_id or f"<your-namespace>/{facts.model_name}",
            begin_marker=BEGIN_MARKER,
            end_marker=END_MARKER,
            version=__version__,
            cost_table=cost_table(facts, folder / "config.json", contexts),
            plot_file=PLOT_FILENAME if (folder / PLOT_FILENAME).is_file() else None,
            evaluation_table=evaluation_table(facts.evaluations),
            quality_note=" ".join(
                note
                for note in (quality_note(facts.evaluations), retrieval_note(facts.evaluations))
                if note
            ),
            commands=reproduce_commands(facts),
            settings=reproduce_settings(facts),
            kv_ratio=(facts.before.kv_heads / facts.after.kv_heads)
            if facts.before and facts.after
            else None,
            fmt=_fmt_number,
            fmt_bytes=_fmt_bytes,
        )
    except jinja2.TemplateError as err:
        raise ConfigError(f"card template {str(template_path)!r} failed to render: {err}") from None
    return _normalise(str(ModelCard(content)))


def _normalise(text: str) -> str:
    """Strip trailing spaces, collapse 3+ blank lines, end with exactly one newline."""
    lines = [line.rstrip() for line in text.splitlines()]
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return out.strip("\n") + "\n"


def _marked_span(text: str) -> tuple[int, int] | None:
    """``(start, end)`` of our part: the first begin marker and the first end marker after it.

    An end marker before the begin marker (or a lone marker) is user text, not our part.
    """
    start = text.find(BEGIN_MARKER)
    end = text.find(END_MARKER, start + len(BEGIN_MARKER)) if start >= 0 else -1
    return None if end < 0 else (start, end + len(END_MARKER))


def has_markers(text: str) -> bool:
    """Whether ``text`` holds our part of the card (begin marker, then end marker)."""
    return _marked_span(text) is not None


def _split(
    text: str, *, strict: bool = False, where: str = "the card"
) -> tuple[dict[str, Any], str]:
    """(YAML header as a dict, body) of a card text.

    Raises:
        ConfigError: with ``strict``, the header is not valid YAML or not a mapping (merging
            would otherwise drop the user's metadata).
    """
    import yaml

    match = _HEADER.match(text)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as err:
        if strict:
            mark = getattr(err, "problem_mark", None)
            line = f" (line {mark.line + 2})" if mark is not None else ""
            problem = getattr(err, "problem", None) or type(err).__name__
            raise ConfigError(
                f"{where} has a malformed YAML header{line}: {problem}; fix or remove the "
                "header between the --- lines (it is not overwritten)"
            ) from None
        meta = {}
    if not isinstance(meta, dict):
        if strict:
            raise ConfigError(
                f"{where} has a YAML header that is not a mapping (key: value lines); fix or "
                "remove it (it is not overwritten)"
            )
        meta = {}
    return meta, text[match.end() :]


def merge_card(existing: str, rendered: str, *, where: str = "the existing card") -> str:
    """Update ``existing`` with a freshly ``rendered`` card, keeping everything the user wrote.

    Our YAML keys are replaced (others kept); the text between the markers is replaced; text
    before and after the markers is kept. An existing card without markers keeps its body below
    our section. ``merge_card(merge_card(a, r), r) == merge_card(a, r)``.
    """
    import yaml

    old_meta, old_body = _split(existing, strict=True, where=where)
    new_meta, new_body = _split(rendered)
    meta = {k: v for k, v in old_meta.items() if k not in OWNED_KEYS}
    meta.update(new_meta)
    ours = new_body
    new_span, old_span = _marked_span(new_body), _marked_span(old_body)
    if new_span is not None:
        ours = new_body[new_span[0] : new_span[1]]
    if not existing.strip():
        body = new_body
    elif old_span is not None:
        body = old_body[: old_span[0]] + ours + old_body[old_span[1] :]
    else:
        body = ours + "\n\n" + old_body
    header = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip()
    return _normalise(f"---\n{header}\n---\n\n{body.lstrip()}")


def write_card(
    checkpoint_dir: str | os.PathLike[str],
    *,
    template: str | os.PathLike[str] | None = None,
    repo_id: str | None = None,
    license: str | None = None,
    base_model: str | None = None,
    contexts: tuple[int, ...] = DEFAULT_CONTEXTS,
    plot: bool = True,
) -> Path:
    """Render the card and write (or idempotently update) ``checkpoint_dir/README.md``.

    With ``plot`` (default) it also writes the cost plot ``gqa_retrofit_cost.png`` that the
    card embeds (an existing plot is embedded either way).

    Returns:
        The path of the written ``README.md``.

    Raises:
        ModelSourceError, ConversionError, ConfigError: see :func:`render_card`.
    """
    folder = Path(checkpoint_dir)
    if plot and (folder / "config.json").is_file() and (folder / MANIFEST_FILENAME).is_file():
        write_cost_plot(folder, base_model=base_model, contexts=contexts)
    rendered = render_card(
        folder,
        template=template,
        repo_id=repo_id,
        license=license,
        base_model=base_model,
        contexts=contexts,
    )
    path = folder / CARD_FILENAME
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    text = merge_card(existing, rendered, where=repr(str(path)))
    tmp = path.with_name(f".{CARD_FILENAME}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
