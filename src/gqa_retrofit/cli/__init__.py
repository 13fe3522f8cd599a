"""Command-line interface: one entry point, one module per subcommand.

Each module in this package that defines ``register(subparsers)`` is a subcommand. ``register``
adds its parser and sets ``func`` to a callable ``(args) -> int``. Subcommand modules stay thin
(parse, call the library, print) and import heavy libraries inside ``func`` only, so that
``gqa-retrofit --help`` and the closed-form estimator start fast.
"""
