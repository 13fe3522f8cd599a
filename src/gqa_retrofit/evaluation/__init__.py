"""evaluation package of gqa-retrofit."""
