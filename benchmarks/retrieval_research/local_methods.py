"""Per-layer conversion variants on the copy-critical layers, each alone in the original model.

Run: PYTHONPATH=src python benchmarks/retrieval_research/local_methods.py pca-refit,rw100,rw1000
Calibration is local: the attention inputs and outputs of the ORIGINAL model on the first 4
windows of 512 tokens of the first training novel (no sequential conversion), so each layer's
variant is judged alone: converted layer L in the otherwise original model, copy probe (2 spans).
Variants: ``pca-refit`` (the default), ``pca``, ``mean``, and ``rwN``: pca-refit whose weighted
PCA gives each query head the weight ``1 + N * max(induction, prev-token score)``
(results/head_scores.json), so the shared KV head favours the heads that carry copying.
Appends one line per variant to results/local_methods.jsonl.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from harness import RESULTS, append_jsonl, copy_probe, load_model, source_and_tokenizer

CRITICAL_LAYERS = [0, 2, 16, 17, 18, 19, 20, 23]  # from results/layer_sensitivity.json


class LocalCalibration:
    """The LayerCalibration interface from the original model's activations of one layer."""

    def __init__(self, index: int, data: dict, run: Any) -> None:
        self.index, self.inputs, self.source_inputs = index, data["x"], data["x"]
        self.target, self.qk_norm, self.residual_gap = data["y"], False, None
        self._pe, self._run = data["pe"][0], run

    @property
    def tokens(self) -> int:
        return int(self.inputs.shape[0] * self.inputs.shape[1])

    @torch.no_grad()
    def run_attention(self, weights: Any, inputs: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self._run(self.index, weights, self.inputs if inputs is None else inputs, self._pe)


def weighted_pca_refit(alpha: float, scores: dict) -> Any:
    import gqa_retrofit.conversion.methods.shared_head as sh
    from gqa_retrofit.conversion.methods import compose

    def fn(weights: Any, target: Any, cal: Any) -> Any:
        layer = cal.index
        w = [
            1.0 + alpha * max(scores["induction"][layer][h], scores["prev"][layer][h])
            for h in range(weights.heads)
        ]
        key, value = sh._shared_key, sh._shared_value

        def weighted_key(ws: Any, group: Any, x: Any, q: Any, q_bias: Any) -> Any:
            q2 = ws.q.clone()
            for h in range(ws.heads):
                q2[h] = q2[h] * w[h] ** 0.5
            return key(ws.replace(q=q2), group, x, q, q_bias)

        def weighted_value(ws: Any, group: Any, x: Any, o: Any) -> Any:
            o2 = ws.o.clone()
            for h in range(ws.heads):
                o2[:, h] = o2[:, h] * w[h] ** 0.5
            return value(ws.replace(o=o2), group, x, o)

        sh._shared_key, sh._shared_value = weighted_key, weighted_value
        try:
            return compose.convert_attention(weights, target, cal, kv="pca", refit=True)
        finally:
            sh._shared_key, sh._shared_value = key, value

    return fn


def methods(scores: dict) -> dict[str, Any]:
    from gqa_retrofit.conversion.methods import compose
    from gqa_retrofit.conversion.pooling import mean_pooling

    found: dict[str, Any] = {
        "pca-refit": lambda w, t, c: compose.convert_attention(w, t, c, kv="pca", refit=True),
        "pca": lambda w, t, c: compose.convert_attention(w, t, c, kv="pca", refit=False),
        "mean": lambda w, t, c: mean_pooling(w, t),
    }
    for alpha in (10, 100, 1000):
        found[f"rw{alpha}"] = weighted_pca_refit(float(alpha), scores)
    return found


def main() -> None:
    from gqa_retrofit.arch import get_family
    from gqa_retrofit.assets import default_corpus
    from gqa_retrofit.conversion.calibration import attention_weights, build_attention
    from gqa_retrofit.conversion.pooling import HeadTarget

    names = sys.argv[1].split(",")
    src, tok = source_and_tokenizer()
    model = load_model(src)
    config, spec = model.config, get_family("llama")
    original = [layer.self_attn for layer in model.model.layers]
    text = Path(default_corpus().train[0]).read_text(encoding="utf-8")[:400000]
    ids = torch.tensor(tok(text, add_special_tokens=False).input_ids[: 4 * 512]).view(4, 512)
    store: dict[int, dict] = {}
    hooks = []
    for i in CRITICAL_LAYERS:

        def pre(mod: Any, args: Any, kwargs: Any, i: int = i) -> None:
            entry = store.setdefault(i, {"x": [], "pe": [], "y": []})
            entry["x"].append(kwargs["hidden_states"])
            entry["pe"].append(kwargs["position_embeddings"])

        def post(mod: Any, args: Any, kwargs: Any, out: Any, i: int = i) -> None:
            store[i]["y"].append(out[0])

        hooks.append(original[i].register_forward_pre_hook(pre, with_kwargs=True))
        hooks.append(original[i].register_forward_hook(post, with_kwargs=True))
    with torch.no_grad():
        for b in range(0, 4, 2):
            model(ids[b : b + 2])
    for h in hooks:
        h.remove()
    data = {
        i: {"x": torch.cat(d["x"]), "y": torch.cat(d["y"]), "pe": d["pe"]} for i, d in store.items()
    }

    def run(
        index: int, weights: Any, x: torch.Tensor, pe: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mod = build_attention(spec, original[index], config, weights, layer_idx=index)
        heads: list[torch.Tensor] = []
        hook = mod.o_proj.register_forward_pre_hook(lambda m, a: heads.append(a[0]))
        cos, sin = pe
        outs = []
        for b in range(0, x.shape[0], 2):
            xb = x[b : b + 2]
            pos = (cos[:1].expand(xb.shape[0], -1, -1), sin[:1].expand(xb.shape[0], -1, -1))
            outs.append(mod(hidden_states=xb, position_embeddings=pos, attention_mask=None)[0])
        hook.remove()
        flat = torch.cat(heads)
        return torch.cat(outs), flat.view(*flat.shape[:2], weights.heads, weights.head_dim)

    table = methods(json.loads((RESULTS / "head_scores.json").read_text()))
    for name in names:
        row = {}
        for i in CRITICAL_LAYERS:
            source = attention_weights(spec, config, original[i])
            result = table[name](source, HeadTarget(1), LocalCalibration(i, data[i], run))
            converted = build_attention(spec, original[i], config, result.weights, layer_idx=i)
            model.model.layers[i].self_attn = converted
            row[i] = round(copy_probe(model, tok.vocab_size, n=2)["second"], 3)
            model.model.layers[i].self_attn = original[i]
        print(name, row, flush=True)
        append_jsonl("local_methods.jsonl", {"method": name, "copy_by_layer": row})


if __name__ == "__main__":
    main()
