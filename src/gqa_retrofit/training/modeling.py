"""Loading student and teacher, checking that they share a tokenizer, choosing what trains."""

from __future__ import annotations

import importlib
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..arch import FAMILIES
from ..errors import TrainingError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def _register_custom_types() -> None:
    """Make gqa-retrofit's own model types (converted non-native families) loadable."""
    try:
        module = importlib.import_module("gqa_retrofit.patching")
    except ImportError:
        return
    register = getattr(module, "register_custom_types", None)
    if callable(register):
        register()


def load_causal_lm(
    path: Path, *, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False
) -> Any:
    """Load a causal LM in ``dtype`` with gradients off everywhere (callers enable what trains)."""
    from transformers import AutoModelForCausalLM

    from ..conversion.streaming import require_safetensors

    _register_custom_types()
    require_safetensors(path)  # pickled .bin weights are never loaded
    model = AutoModelForCausalLM.from_pretrained(
        str(path), dtype=dtype, trust_remote_code=trust_remote_code, use_safetensors=True
    )
    model.requires_grad_(False)
    return model


def read_config(path: Path) -> dict[str, Any]:
    with open(path / "config.json", encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def has_tokenizer(path: Path) -> bool:
    return any((path / name).is_file() for name in TOKENIZER_FILES)


def load_tokenizer(path: Path, *, trust_remote_code: bool = False) -> Any:
    """The tokenizer saved with a checkpoint.

    Raises:
        TrainingError: the checkpoint has no tokenizer files.
    """
    from transformers import AutoTokenizer

    if not has_tokenizer(path):
        raise TrainingError(
            f"model {str(path)!r} has no tokenizer files (tokenizer.json, ...): training needs "
            "the tokenizer to read the data"
        )
    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)


def check_teacher_compatible(
    student_dir: Path, teacher_dir: Path, student_tok: Any, *, trust_remote_code: bool = False
) -> None:
    """Refuse a teacher whose vocabulary or tokenizer differs from the student's.

    Raises:
        TrainingError: vocab sizes differ, or the teacher's tokenizer maps tokens differently.
    """
    s_vocab = read_config(student_dir).get("vocab_size")
    t_vocab = read_config(teacher_dir).get("vocab_size")
    if s_vocab != t_vocab:
        raise TrainingError(
            f"teacher {str(teacher_dir)!r} has vocab_size {t_vocab} but the student has "
            f"{s_vocab}: distillation needs the same vocabulary"
        )
    if has_tokenizer(teacher_dir):
        teacher_tok = load_tokenizer(teacher_dir, trust_remote_code=trust_remote_code)
        if teacher_tok.get_vocab() != student_tok.get_vocab():
            raise TrainingError(
                f"teacher {str(teacher_dir)!r} has a different tokenizer than the student "
                "(token-to-id maps differ): distillation needs the same tokenizer"
            )
        if teacher_tok.eos_token_id != student_tok.eos_token_id:
            raise TrainingError(
                f"teacher {str(teacher_dir)!r} uses EOS id {teacher_tok.eos_token_id}, the "
                f"student {student_tok.eos_token_id}: distillation needs the same tokenizer"
            )


def attention_module_patterns(model_type: str) -> list[re.Pattern[str]]:
    """Regexes matching the attention projection modules of ``model_type``.

    Known families use their :class:`~gqa_retrofit.arch.FamilySpec`; other types fall back to
    the common names (``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``, fused ``qkv_proj``).
    """
    spec = FAMILIES.get(model_type)
    if spec is None:
        base = r"(?:.*\.)?(?:self_attn|attention|attn|self_attention)"
        names = ["q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj"]
    else:
        base = re.escape(spec.attn_path).replace(re.escape("{i}"), r"\d+")
        names = [
            n for n in (spec.q_name, spec.k_name, spec.v_name, spec.qkv_name, spec.o_name) if n
        ]
    return [re.compile(rf"(?:.*\.)?{base}\.{re.escape(n)}") for n in names]


def attention_projection_names(model: Any) -> list[str]:
    """Qualified names of the attention projection modules (q/k/v or fused qkv, and output).

    Raises:
        TrainingError: none found (use ``--trainable all`` or ``lora``).
    """
    patterns = attention_module_patterns(model.config.model_type)
    found = [name for name, _ in model.named_modules() if any(p.fullmatch(name) for p in patterns)]
    if not found:
        raise TrainingError(
            f"found no attention projections in model type {model.config.model_type!r}: use "
            "--trainable all or --trainable lora"
        )
    return found


def set_trainable(model: Any, trainable: str, *, lora_r: int = 16, lora_alpha: int = 32) -> Any:
    """Enable gradients on what trains; return the model to train (peft-wrapped for ``lora``).

    Raises:
        TrainingError: ``trainable`` unknown or no attention projections found.
    """
    if trainable == "all":
        model.requires_grad_(True)
        return model
    modules = attention_projection_names(model)
    if trainable == "attention":
        for name in modules:
            model.get_submodule(name).requires_grad_(True)
        return model
    if trainable == "lora":
        from peft import LoraConfig, get_peft_model

        leaf_names = sorted({name.rsplit(".", 1)[-1] for name in modules})
        config = LoraConfig(
            r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=0.0,
            target_modules=leaf_names,
            bias="none",
        )
        with warnings.catch_warnings():
            # peft 0.21 reads the deprecated `is_gradient_checkpointing` of transformers 5.24
            warnings.filterwarnings(
                "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
            )
            return get_peft_model(model, config)
    raise TrainingError(f"--trainable {trainable!r} is invalid: choose attention, all or lora")


@dataclass
class MemoryEstimate:
    """Bytes needed for weights, gradients and AdamW state (activations not included)."""

    student_bytes: int
    teacher_bytes: int
    gradient_bytes: int
    optimizer_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.student_bytes + self.teacher_bytes + self.gradient_bytes + self.optimizer_bytes

    def to_dict(self) -> dict[str, int]:
        return {
            "student_bytes": self.student_bytes,
            "teacher_bytes": self.teacher_bytes,
            "gradient_bytes": self.gradient_bytes,
            "optimizer_bytes": self.optimizer_bytes,
            "total_bytes": self.total_bytes,
        }

    def describe(self) -> str:
        mib = 1024**2
        return (
            f"memory before activations: student {self.student_bytes / mib:.0f} MiB, "
            f"teacher {self.teacher_bytes / mib:.0f} MiB, gradients "
            f"{self.gradient_bytes / mib:.0f} MiB, AdamW state "
            f"{self.optimizer_bytes / mib:.0f} MiB; total {self.total_bytes / mib:.0f} MiB"
        )


def estimate_memory(student: Any, teacher: Any | None) -> MemoryEstimate:
    def nbytes(params: Any) -> int:
        return sum(p.numel() * p.element_size() for p in params)

    trainable = [p for p in student.parameters() if p.requires_grad]
    grads = nbytes(trainable)
    return MemoryEstimate(
        student_bytes=nbytes(student.parameters()),
        teacher_bytes=nbytes(teacher.parameters()) if teacher is not None else 0,
        gradient_bytes=grads,
        optimizer_bytes=2 * sum(p.numel() * 4 for p in trainable),
    )
