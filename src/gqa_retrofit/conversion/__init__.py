"""Checkpoint conversion: canonical attention form, pooling registry, streaming I/O."""
