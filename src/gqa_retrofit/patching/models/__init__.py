"""Decoupled-head GQA model types for families whose transformers classes lack GQA.

Each ``configuration_<type>.py`` / ``modeling_<type>.py`` pair imports only ``torch``,
``transformers`` (and ``huggingface_hub``, which transformers requires) plus its siblings by
relative import: ``save_pretrained`` copies these files next to the weights, and the checkpoint
then loads with ``trust_remote_code=True`` where gqa_retrofit is not installed.
"""
