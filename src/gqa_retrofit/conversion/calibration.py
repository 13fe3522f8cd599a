"""Calibration activations for data-aware conversion, streamed one decoder layer at a time.

A :class:`CalibrationSession` tokenizes a little text, builds the model with every weight on
the meta device, materialises only the embeddings, and then walks the decoder layers in order,
as post-training quantization toolkits do. For layer ``i`` it loads that layer's tensors from
the safetensors shards, runs it, and hands the pooling method a :class:`LayerCalibration`:

- ``inputs``: the attention input (after the layer's input norm) in the *partially converted*
  model, i.e. through layers ``0..i-1`` already converted;
- ``target``: the attention output of the *original* layer in the original model;
- :meth:`LayerCalibration.run_attention`: runs this family's real transformers attention module
  (RoPE, q/k norms, scaling, masks all come from transformers) with any canonical weights.

After pooling, :meth:`CalibrationSession.advance` pushes both activation streams through layer
``i`` (the converted stream with the converted weights) and frees the layer again. Memory is one
decoder layer plus the activations (windows x seq_len x hidden, a few per stream).

With ``device="cuda"`` (or ``auto`` on a machine with a GPU) the forward passes run there: the
stem, the current layer and both residual streams live on the device, every other layer stays on
disk (meta tensors until its turn). What a pooling method sees (:class:`LayerCalibration`) is
copied to the host, so methods do their float64 algebra on the CPU and never need to know the
device; :meth:`LayerCalibration.run_attention` moves its inputs over and its outputs back.
:meth:`CalibrationSession.save_streams` and :meth:`CalibrationSession.restore_streams` write and
read the two streams between layers, so an interrupted conversion continues at the next layer.

Usage::

    session = CalibrationSession(src_dir, config, text_paths, tokens=16384)
    for i in range(session.num_layers):
        calibration = session.layer(i, source_weights[i])
        result = method.fn(source_weights[i], target, calibration)
        session.advance(i, result.weights)
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..arch import FamilySpec, get_family
from ..arch.canonical import AttentionWeights
from ..arch.layout import merge_attention
from ..data import DataOptions, TokenSample, sample_windows
from ..data.copy_structure import add_copy_structure, random_span_ids
from ..devices import resolve_device
from ..errors import ConversionError, DataError

# Windows per forward pass: bounds the peak activation memory of one layer call.
_CHUNK_WINDOWS = 4


class _StopForward(Exception):
    """Raised by a hook to end a forward pass once the wanted activations are recorded."""


@dataclass
class _Call:
    """How a module was called: positional args (hidden states first) and keyword args."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    hidden_kw: bool  # hidden states were passed as the keyword ``hidden_states``

    def with_hidden(self, hidden: torch.Tensor) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if self.hidden_kw:
            return self.args, {**self.kwargs, "hidden_states": hidden}
        return (hidden, *self.args[1:]), self.kwargs


def _record_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[torch.Tensor, _Call]:
    if args:
        return args[0], _Call(tuple(args), dict(kwargs), hidden_kw=False)
    hidden = kwargs["hidden_states"]
    return hidden, _Call((), dict(kwargs), hidden_kw=True)


class _LayerRecorder(nn.Module):
    """Stands in for decoder layer ``index`` during the stem pass: records how it is called."""

    def __init__(self, index: int, calls: dict[int, _Call], last: bool) -> None:
        super().__init__()
        self.index, self.calls, self.last = index, calls, last

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        hidden, call = _record_call(args, kwargs)
        self.calls[self.index] = call
        if self.last:
            raise _StopForward
        return hidden


def head_config(config: Any, *, heads: int, kv_heads: int, head_dim: int) -> Any:
    """A copy of ``config`` describing attention with the given head geometry.

    Only for families that honour ``num_key_value_heads`` and ``head_dim`` natively.
    """
    patched = copy.deepcopy(config)
    patched.num_attention_heads = heads
    patched.num_key_value_heads = kv_heads
    patched.head_dim = head_dim
    return patched


def _module_path(spec: FamilySpec) -> tuple[str, str]:
    """(path of the decoder-layer list, attention attribute inside one layer)."""
    before, sep, after = spec.attn_path.partition(".{i}")
    if not sep or not after.startswith("."):
        raise ConversionError(f"cannot locate decoder layers from attn_path {spec.attn_path!r}")
    return before, after[1:]


def _get(root: nn.Module, dotted: str) -> Any:
    obj: Any = root
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _set_parameter(root: nn.Module, dotted: str, tensor: torch.Tensor) -> None:
    owner, _, name = dotted.rpartition(".")
    module = _get(root, owner) if owner else root
    module._parameters[name] = nn.Parameter(tensor, requires_grad=False)


def attention_weights(spec: FamilySpec, config: Any, module: nn.Module) -> AttentionWeights:
    """Canonical weights of a live attention module (through :mod:`gqa_retrofit.arch.layout`)."""
    from ..arch.layout import split_attention

    return split_attention(
        spec, config, {name: t.detach() for name, t in module.state_dict().items()}
    )


def build_attention(
    spec: FamilySpec,
    original: nn.Module,
    config: Any,
    weights: AttentionWeights,
    *,
    layer_idx: int,
) -> nn.Module:
    """A new attention module like ``original`` but holding ``weights`` (any head geometry).

    For families whose fewer-KV-head form is a custom ``<family>_gqa`` type (gpt2, gpt_neox,
    opt, falcon) the module is that type's attention, built from the patched config, as in the
    checkpoint the converter writes. Parameters outside the canonical form (per-head q/k norms)
    are shared with ``original``.

    Raises:
        ConversionError: the module has a parameter that neither source provides.
    """
    from accelerate import init_empty_weights

    module_type: type[nn.Module] = type(original)
    if spec.decoupled == "custom":
        from ..patching import patch_config

        implementation = getattr(config, "_attn_implementation", None)
        config = patch_config(
            config, heads=weights.heads, kv_heads=weights.kv_heads, head_dim=weights.head_dim
        )
        config._attn_implementation = implementation
        spec = get_family(str(config.model_type))
        module_type = _attention_type(config, spec)
    else:
        config = head_config(
            config, heads=weights.heads, kv_heads=weights.kv_heads, head_dim=weights.head_dim
        )
    with init_empty_weights(include_buffers=False):
        module = module_type(config=config, layer_idx=layer_idx)
    for name, tensor in merge_attention(spec, config, weights).items():
        _set_parameter(module, name, tensor)
    source = dict(original.named_parameters())
    for name, p in list(module.named_parameters()):
        if p.is_meta:
            kept = source.get(name)
            if kept is None or kept.shape != p.shape:
                raise ConversionError(
                    f"cannot build the converted attention of layer {layer_idx}: no value for "
                    f"{name}"
                )
            _set_parameter(module, name, kept.detach())
    return module.eval()


def _window_length(spec: FamilySpec, config: Any, seq_len: int) -> int:
    """``seq_len``, capped at the model's position limit (learned position tables: gpt2, opt)."""
    for key in spec.positions_keys:
        limit = getattr(config, key, None)
        if isinstance(limit, int) and limit > 0:
            return min(seq_len, limit)
    return seq_len


_ATTENTION_TYPES: dict[str, type[nn.Module]] = {}


def _attention_type(config: Any, spec: FamilySpec) -> type[nn.Module]:
    """The attention class of ``config``'s model type (read from a skeleton on the meta device)."""
    model_type = str(config.model_type)
    if model_type not in _ATTENTION_TYPES:
        from accelerate import init_empty_weights
        from transformers import AutoModelForCausalLM

        with init_empty_weights(include_buffers=False):
            skeleton = AutoModelForCausalLM.from_config(config)
        _ATTENTION_TYPES[model_type] = type(_get(skeleton, spec.attn_path.format(i=0)))
    return _ATTENTION_TYPES[model_type]


class _ShardReader:
    """Reads single tensors from a safetensors checkpoint directory (one file open at a time)."""

    def __init__(self, src_dir: Path) -> None:
        index = src_dir / "model.safetensors.index.json"
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
            self.files = {name: src_dir / file for name, file in weight_map.items()}
        elif (src_dir / "model.safetensors").is_file():
            from safetensors import safe_open

            path = src_dir / "model.safetensors"
            with safe_open(str(path), framework="pt") as f:
                self.files = {name: path for name in f.keys()}  # noqa: SIM118
        else:
            raise ConversionError(f"no safetensors weights in {src_dir}")

    def __contains__(self, name: str) -> bool:
        return name in self.files

    def read_rows(self, name: str, rows: torch.Tensor, *, block: int = 8192) -> torch.Tensor:
        """Rows ``rows`` (sorted, unique) of the 2-D tensor ``name``, read ``block`` rows at a
        time: a vocabulary-sized embedding is never held whole.

        Raises:
            ConversionError: the tensor is missing.
        """
        from safetensors import safe_open

        if name not in self.files:
            raise ConversionError(f"tensor {name!r} is missing from the checkpoint")
        parts = []
        with safe_open(str(self.files[name]), framework="pt") as f:
            sliced = f.get_slice(name)
            for start in range(0, int(rows.max()) + 1, block):
                wanted = rows[(rows >= start) & (rows < start + block)]
                if wanted.numel():
                    parts.append(sliced[start : start + block][wanted - start])
        return torch.cat(parts)

    def read(self, names: Sequence[str]) -> dict[str, torch.Tensor]:
        from safetensors import safe_open

        by_file: dict[Path, list[str]] = {}
        for name in names:
            if name not in self.files:
                raise ConversionError(f"tensor {name!r} is missing from the checkpoint")
            by_file.setdefault(self.files[name], []).append(name)
        out: dict[str, torch.Tensor] = {}
        for path, file_names in by_file.items():
            if not path.is_file():
                raise ConversionError(f"shard {path.name} is missing")
            with safe_open(str(path), framework="pt") as f:
                for name in file_names:
                    out[name] = f.get_tensor(name)
        return out


def calibration_sample(
    tokenizer: Any,
    sources: Sequence[str | Path],
    *,
    tokens: int,
    seq_len: int,
    options: DataOptions | None = None,
    token: str | bool | None = None,
) -> TokenSample:
    """``tokens // seq_len`` windows of ``seq_len`` tokens drawn from *all* ``sources``.

    Through :func:`gqa_retrofit.data.sample_windows`: the windows are split evenly over the
    sources and chosen at random (``options.data_seed``) inside each; the sample's record says which
    files (SHA-256), datasets and how many tokens of each were used.

    Raises:
        DataError: a source is missing or unreadable, or all sources together are shorter than
            one window or than ``tokens``.
    """
    if seq_len <= 0 or tokens < seq_len:
        raise DataError(
            f"calibration tokens={tokens} must be at least one window of seq_len={seq_len}"
        )
    return sample_windows(
        [str(s) for s in sources],
        tokenizer,
        seq_len=seq_len,
        windows=tokens // seq_len,
        options=options,
        token=token,
        mode="sample",
        what="calibration data",
    )


def calibration_windows(
    tokenizer: Any,
    text_paths: Sequence[str | Path],
    *,
    tokens: int,
    seq_len: int,
    options: DataOptions | None = None,
) -> torch.Tensor:
    """The windows of :func:`calibration_sample` (``[tokens // seq_len, seq_len]`` int64).

    Raises:
        DataError: see :func:`calibration_sample`.
    """
    return calibration_sample(
        tokenizer, text_paths, tokens=tokens, seq_len=seq_len, options=options
    ).windows


def fingerprint(windows: torch.Tensor) -> str:
    """SHA-256 of the calibration token ids (for the manifest; tokens are never written)."""
    return hashlib.sha256(windows.to(torch.int64).numpy().tobytes()).hexdigest()


@dataclass
class LayerCalibration:
    """What a data-aware pooling method gets for one decoder layer.

    Attributes:
        index: decoder layer index.
        inputs: attention inputs ``[windows, seq, d]`` in the partially converted model.
        source_inputs: attention inputs ``[windows, seq, d]`` in the original model.
        target: the original layer's attention output ``[windows, seq, d]`` on ``source_inputs``.
        qk_norm: the family normalises q and k per head (linear K/Q maps are then not exact).
        residual_gap: original minus converted residual stream entering the layer
            ``[windows, seq, d]`` (the error of the layers converted so far).
    """

    index: int
    inputs: torch.Tensor
    source_inputs: torch.Tensor
    target: torch.Tensor
    qk_norm: bool
    _session: CalibrationSession = field(repr=False)

    @property
    def residual_gap(self) -> torch.Tensor:
        """Original minus converted residual stream entering this layer ``[windows, seq, d]``
        (computed on demand: few methods need it).

        Raises:
            ConversionError: the session has moved past this layer.
        """
        session = self._session
        if session._current != self.index or session._next_source is None:
            raise ConversionError(f"layer {self.index} is no longer being calibrated")
        return torch.cat([(s - c).cpu() for s, c in zip(session._source, session._converted)])

    @property
    def tokens(self) -> int:
        return int(self.inputs.shape[0] * self.inputs.shape[1])

    def run_attention(
        self, weights: AttentionWeights, inputs: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run this layer's transformers attention module with ``weights`` on ``inputs``.

        Args:
            weights: canonical weights of any head geometry the family supports.
            inputs: attention inputs ``[windows, seq, d]``; defaults to :attr:`inputs`.

        Returns:
            ``(output, heads)``: the attention output ``[windows, seq, d]`` and the per-head
            outputs entering the output projection ``[windows, seq, n_h, d_h]``.
        """
        return self._session.run_attention(
            self.index, weights, self.inputs if inputs is None else inputs
        )


class CalibrationSession:
    """Streams calibration activations through a checkpoint one decoder layer at a time.

    Args:
        src_dir: local checkpoint directory (safetensors weights, tokenizer files).
        config: the source transformers config.
        text_paths: calibration data: files, directories, globs, dataset repositories or Hub
            dataset ids (see :mod:`gqa_retrofit.data`); windows are drawn from all of them.
        tokens: calibration tokens (rounded down to whole windows of ``seq_len``).
        seq_len: tokens per window (capped at the model's maximum positions).
        dtype: compute dtype of the calibration passes.
        tokenizer: a tokenizer to use instead of the one in ``src_dir``.
        device: where the forward passes run (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``).
        data_options: text column, dataset config/split/revision and sampling seed.
        data_token: Hub token for Hub datasets (never recorded).
        copy_fraction: share of the windows rebuilt as a span repeated twice
            (:mod:`gqa_retrofit.data.copy_structure`), so that the conversion sees the
            attention that in-context copying and retrieval use; 0 (the default) keeps plain text.

    Raises:
        DataError: the calibration text is missing or too short.
        ConversionError: the checkpoint lacks a tensor the calibration needs, or stores the
            decoder layers under other names (mixture-of-experts layers in transformers v5).
        UnsupportedFamilyError: the family has no entry in the family table.
    """

    def __init__(
        self,
        src_dir: str | Path,
        config: Any,
        text_paths: Sequence[str | Path],
        *,
        tokens: int,
        seq_len: int = 512,
        dtype: torch.dtype = torch.float32,
        tokenizer: Any | None = None,
        device: Any = "cpu",
        data_options: DataOptions | None = None,
        data_token: str | bool | None = None,
        copy_fraction: float = 0.0,
    ) -> None:
        from accelerate import init_empty_weights
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.src_dir = Path(src_dir)
        self.config = config
        self.spec = get_family(config.model_type)
        self.dtype = dtype
        self.device = resolve_device(device)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(self.src_dir)
        self.seq_len = _window_length(self.spec, config, seq_len)
        sample = calibration_sample(
            tokenizer,
            text_paths,
            tokens=tokens,
            seq_len=self.seq_len,
            options=data_options,
            token=data_token,
        )
        self.windows, self.copy_record = sample.windows, None
        if copy_fraction:  # a share of the windows rebuilt as repeated spans (recorded)
            vocab = min(int(tokenizer.vocab_size), int(getattr(config, "vocab_size", 0) or 1 << 62))
            self.windows, self.copy_record = add_copy_structure(
                sample.windows,
                copy_fraction,
                span_ids=random_span_ids(vocab, tokenizer.all_special_ids),
                seed=(data_options or DataOptions()).data_seed,
            )
        self.data_record = sample.record  # what was used, for the manifest
        self.fingerprint = fingerprint(self.windows)
        self._reader = _ShardReader(self.src_dir)
        self._layers_path, self._attn_name = _module_path(self.spec)

        with init_empty_weights(include_buffers=False):
            self.model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        self.model.eval()
        for module in self.model.modules():  # rotary tables etc. (built on the host)
            for name, buffer in list(module._buffers.items()):
                if buffer is not None and not buffer.is_meta:
                    module._buffers[name] = buffer.to(self.device)
        self._layers: nn.ModuleList = _get(self.model, self._layers_path)
        self.num_layers = len(self._layers)
        self._check_layer_names()
        self._load_stem()
        self._chunks = list(torch.split(self.windows, _CHUNK_WINDOWS))
        self._source: list[torch.Tensor] = []  # residual stream of the original model
        self._converted: list[torch.Tensor] = []  # residual stream of the converted model
        self._calls: list[dict[int, _Call]] = []  # per chunk: how each layer is called
        self._attn_calls: list[_Call] = []  # per chunk: how the current attention is called
        self._next_source: list[torch.Tensor] | None = None
        self._current: int | None = None
        self._run_stem()

    # ------------------------------------------------------------------ loading
    def _layer_prefix(self, i: int) -> str:
        return f"{self._layers_path}.{i}"

    def _check_layer_names(self) -> None:
        """Refuse checkpoints whose decoder layers are stored under other names than the modules'
        (transformers converts mixture-of-experts weights while loading: not streamed here)."""
        prefix = self._layer_prefix(0)
        for name, _ in self._layers[0].named_parameters():
            if f"{prefix}.{name}" not in self._reader.files:
                kind = "mixture-of-experts " if self.spec.moe is not None else ""
                raise ConversionError(
                    f"data-aware methods cannot stream this {kind}{self.config.model_type} "
                    f"checkpoint: {prefix}.{name} is stored under another name; use --method mean"
                )

    def _load_stem(self) -> None:
        """Materialise every parameter outside the decoder layers and the output head.

        Of the input embedding only the rows of the calibration tokens are read (in fp32 a
        128K-vocabulary table is GBs): the table becomes those rows, and the stem pass feeds
        each token's row index (:attr:`_vocab`) instead of its id, which embeds identically.
        """
        skip = {id(p) for p in self._layers.parameters()}
        output = self.model.get_output_embeddings()
        if output is not None:
            skip |= {id(p) for p in output.parameters()}
        embedding = self.model.get_input_embeddings().weight
        self._vocab = torch.unique(self.windows)  # sorted token ids of the calibration text
        names = [n for n, p in self.model.named_parameters() if id(p) not in skip]
        table = [n for n, p in self.model.named_parameters() if p is embedding]
        tensors = self._reader.read([n for n in names if n not in table])
        for name in table:
            tensors[name] = self._reader.read_rows(name, self._vocab)
        for name in names:
            _set_parameter(self.model, name, tensors[name].to(self.device, self.dtype))

    def _materialise_layer(self, i: int) -> nn.Module:
        layer = self._layers[i]
        names = [n for n, _ in layer.named_parameters()]
        prefix = self._layer_prefix(i)
        tensors = self._reader.read([f"{prefix}.{n}" for n in names])
        for name in names:
            _set_parameter(layer, name, tensors[f"{prefix}.{name}"].to(self.device, self.dtype))
        return layer

    def _release_layer(self, i: int) -> None:
        layer = self._layers[i]
        for name, p in list(layer.named_parameters()):
            _set_parameter(layer, name, torch.empty_like(p, device="meta"))

    # ------------------------------------------------------------------ passes
    @torch.no_grad()
    def _run_stem(self) -> None:
        """Embed every chunk and record how each decoder layer is called."""
        original = list(self._layers)
        for chunk in self._chunks:
            calls: dict[int, _Call] = {}
            for i in range(self.num_layers):
                self._layers[i] = _LayerRecorder(i, calls, last=i == self.num_layers - 1)
            try:
                rows = torch.searchsorted(self._vocab, chunk)  # ids -> rows of the stem table
                self.model(input_ids=rows.to(self.device), use_cache=False)
            except _StopForward:
                pass
            finally:
                for i, layer in enumerate(original):
                    self._layers[i] = layer
            if len(calls) != self.num_layers:
                raise ConversionError(
                    f"calibration pass reached {len(calls)} of {self.num_layers} decoder layers"
                )
            first = calls[0].kwargs["hidden_states"] if calls[0].hidden_kw else calls[0].args[0]
            self._calls.append(calls)
            self._source.append(first)
            self._converted.append(first)

    def _layer_forward(self, i: int, chunk: int, hidden: torch.Tensor) -> torch.Tensor:
        args, kwargs = self._calls[chunk][i].with_hidden(hidden)
        out = self._layers[i](*args, **kwargs)
        return out[0] if isinstance(out, tuple) else out

    @torch.no_grad()
    def layer(self, i: int, source_weights: AttentionWeights | None = None) -> LayerCalibration:
        """Load layer ``i`` and collect what a method needs to convert its attention.

        Args:
            i: the next decoder layer (layers are visited in order, each once).
            source_weights: unused here (the layer is read from the shards); accepted so the
                converter can pass what it read.

        Raises:
            ConversionError: layers visited out of order, or a tensor is missing.
        """
        expected = 0 if self._current is None else self._current + 1
        if i != expected or self._next_source is not None:
            raise ConversionError(f"calibration expects layer {expected} next, got layer {i}")
        self._current = i
        layer = self._materialise_layer(i)
        attn = _get(layer, self._attn_name)
        captured: dict[str, Any] = {}

        def pre_hook(_m: nn.Module, args: Any, kwargs: Any) -> None:
            hidden, call = _record_call(args, kwargs)
            captured["input"], captured["call"] = hidden, call
            if captured.get("stop"):
                raise _StopForward

        def post_hook(_m: nn.Module, _args: Any, _kwargs: Any, output: Any) -> None:
            captured["output"] = output[0] if isinstance(output, tuple) else output

        handles = [
            attn.register_forward_pre_hook(pre_hook, with_kwargs=True),
            attn.register_forward_hook(post_hook, with_kwargs=True),
        ]
        # What the method gets, on the host, filled chunk by chunk (no per-chunk lists and
        # concatenated copies: this is the largest memory of a calibrated conversion).
        shape = (self.windows.shape[0], self.windows.shape[1], self._source[0].shape[-1])
        source_in, target, conv_in = (torch.empty(shape, dtype=self.dtype) for _ in range(3))
        next_source = []
        self._attn_calls = []
        try:
            row = 0
            for c in range(len(self._chunks)):
                rows = slice(row, row + self._chunks[c].shape[0])
                row = rows.stop
                captured["stop"] = False
                next_source.append(self._layer_forward(i, c, self._source[c]))
                source_in[rows] = captured.pop("input")
                target[rows] = captured.pop("output")
                self._attn_calls.append(captured["call"])
                captured["stop"] = True
                with contextlib.suppress(_StopForward):
                    self._layer_forward(i, c, self._converted[c])
                conv_in[rows] = captured.pop("input")
        finally:
            for h in handles:
                h.remove()
        self._next_source = next_source
        return LayerCalibration(  # on the host: methods compute there (see the module doc)
            index=i,
            inputs=conv_in,
            source_inputs=source_in,
            target=target,
            qk_norm=self.spec.qk_norm,
            _session=self,
        )

    def attention_module(self, i: int, weights: AttentionWeights) -> nn.Module:
        """This family's attention module for layer ``i`` holding ``weights``."""
        original = _get(self._layers[i], self._attn_name)
        return build_attention(
            self.spec,
            original,
            self.model.config,
            _on(weights, self.device, self.dtype),
            layer_idx=i,
        )

    @torch.no_grad()
    def run_attention(
        self, i: int, weights: AttentionWeights, inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See :meth:`LayerCalibration.run_attention`."""
        if i != self._current or self._next_source is None:
            raise ConversionError(f"layer {i} is not the layer being calibrated")
        module = self.attention_module(i, weights)
        o_proj = _get(module, self.spec.o_name)
        heads: list[torch.Tensor] = []
        handle = o_proj.register_forward_pre_hook(lambda _m, args: heads.append(args[0]))
        outputs = []
        try:
            for c, chunk_inputs in enumerate(torch.split(inputs, _CHUNK_WINDOWS)):
                args, kwargs = self._attn_calls[c].with_hidden(chunk_inputs.to(self.device))
                out = module(*args, **kwargs)
                outputs.append((out[0] if isinstance(out, tuple) else out).cpu())
                heads[-1] = heads[-1].cpu()
        finally:
            handle.remove()
        head_out = torch.cat(heads)
        return torch.cat(outputs), head_out.view(
            *head_out.shape[:-1], weights.heads, weights.head_dim
        )

    @torch.no_grad()
    def advance(self, i: int, converted: AttentionWeights) -> None:
        """Push both streams through layer ``i`` (the converted one with ``converted``).

        Raises:
            ConversionError: ``i`` is not the layer returned by the last :meth:`layer` call.
        """
        if i != self._current or self._next_source is None:
            raise ConversionError(f"layer {i} is not the layer being calibrated")
        layer = self._layers[i]
        original_attn = _get(layer, self._attn_name)
        setattr(layer, self._attn_name, self.attention_module(i, converted))
        try:
            self._converted = [
                self._layer_forward(i, c, self._converted[c]) for c in range(len(self._chunks))
            ]
        finally:
            setattr(layer, self._attn_name, original_attn)
        self._source, self._next_source = self._next_source, None
        self._release_layer(i)

    def converted_hidden_states(self) -> torch.Tensor:
        """The converted model's residual stream after the layers advanced so far (host)."""
        return torch.cat(self._converted).cpu()

    def source_hidden_states(self) -> torch.Tensor:
        """The original model's residual stream after the layers advanced so far (host)."""
        return torch.cat(self._source).cpu()

    @property
    def next_layer(self) -> int:
        """The layer :meth:`layer` expects next."""
        return 0 if self._current is None else self._current + 1

    def save_streams(self, path: str | Path) -> None:
        """Write both residual streams (entering :attr:`next_layer`) to a safetensors file,
        atomically.

        Raises:
            ConversionError: called between :meth:`layer` and :meth:`advance`.
        """
        from safetensors.torch import save_file

        if self._next_source is not None:
            raise ConversionError("streams can be saved only between layers")
        tensors = {f"source.{c}": t.contiguous().cpu() for c, t in enumerate(self._source)}
        tensors.update(
            {f"converted.{c}": t.contiguous().cpu() for c, t in enumerate(self._converted)}
        )
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        meta = {"next_layer": str(self.next_layer), "fingerprint": self.fingerprint}
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(path)

    def restore_streams(self, path: str | Path) -> int:
        """Continue from streams written by :meth:`save_streams`; returns the next layer.

        Raises:
            ConversionError: the file belongs to other calibration data or another geometry,
                or this session has already visited a layer.
        """
        from safetensors import safe_open

        if self._current is not None:
            raise ConversionError("streams can be restored only before the first layer")
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("fingerprint") != self.fingerprint:
                raise ConversionError(
                    f"saved calibration streams {str(path)!r} come from other calibration data"
                )
            source = [f.get_tensor(f"source.{c}") for c in range(len(self._chunks))]
            converted = [f.get_tensor(f"converted.{c}") for c in range(len(self._chunks))]
        for saved, now in zip(source, self._source):
            if saved.shape != now.shape:
                raise ConversionError(
                    f"saved calibration streams {str(path)!r} have shape {tuple(saved.shape)}, "
                    f"this model {tuple(now.shape)}"
                )
        self._source = [t.to(self.device, self.dtype) for t in source]
        self._converted = [t.to(self.device, self.dtype) for t in converted]
        next_layer = int(meta["next_layer"])
        self._current = next_layer - 1 if next_layer > 0 else None
        return next_layer


def _on(weights: AttentionWeights, device: torch.device, dtype: torch.dtype) -> AttentionWeights:
    """``weights`` moved to ``device`` and cast to ``dtype``."""
    from dataclasses import fields, replace

    moved = {
        f.name: getattr(weights, f.name).to(device, dtype)
        for f in fields(weights)
        if getattr(weights, f.name) is not None
    }
    return replace(weights, **moved)
