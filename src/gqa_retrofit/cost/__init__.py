"""Cost estimation: exact per-model formulas and the paper's quantities."""
