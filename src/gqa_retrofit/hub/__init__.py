"""Hub integration: resolving model sources, model cards, pushing."""
