"""patching package of gqa-retrofit."""
