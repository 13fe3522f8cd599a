"""The one-command pipeline: resumable stages (``stages``), ``retrofit``, ``demo``, the report."""
