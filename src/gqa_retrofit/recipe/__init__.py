"""recipe package of gqa-retrofit."""
