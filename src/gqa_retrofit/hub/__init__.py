"""Hub integration: model cards and pushing (resolving sources is :mod:`gqa_retrofit.sources`)."""
