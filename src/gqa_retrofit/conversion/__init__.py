"""Checkpoint conversion: canonical attention form, pooling registry, streaming I/O.

Importing this package registers every pooling method (the data-aware ones live in
:mod:`gqa_retrofit.conversion.methods`).
"""

from . import methods as methods
