"""training package of gqa-retrofit."""
