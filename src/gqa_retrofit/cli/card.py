"""``gqa-retrofit card OUT``: write (or update) the model card README.md of a checkpoint."""

from __future__ import annotations

import argparse

from ._util import context_list, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "card",
        help="render the model card (README.md) of a converted or trained checkpoint",
        description="Render README.md into a checkpoint directory from its gqa_retrofit.json "
        "manifest and the cost estimator. Re-running updates only the generated part between "
        "the gqa-retrofit markers; text you wrote outside them is kept.",
    )
    parser.add_argument(
        "checkpoint", metavar="OUT", help="checkpoint directory (convert/train output)"
    )
    parser.add_argument("--template", help="Jinja template to use instead of the packaged one")
    parser.add_argument("--repo-id", help="Hub id the card will live at (used in the load snippet)")
    parser.add_argument(
        "--base-model",
        help="Hub id of the source model when it was converted from a local copy",
    )
    parser.add_argument("--license", help="license id (default: inherited from the source card)")
    parser.add_argument(
        "--context",
        type=context_list,
        default=None,
        help="context lengths of the cost table, comma-separated (default 4k,32k,128k)",
    )
    parser.add_argument(
        "--no-plot", action="store_true", help="do not write the cost plot PNG next to the card"
    )
    parser.add_argument(
        "--stdout", action="store_true", help="print the card instead of writing it"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='print {"card": PATH} (with --stdout: {"card": null, "text": ...}) as JSON',
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..hub.card import DEFAULT_CONTEXTS, render_card, write_card

    contexts = tuple(args.context) if args.context else DEFAULT_CONTEXTS
    kwargs = dict(
        template=args.template,
        repo_id=args.repo_id,
        license=args.license,
        base_model=args.base_model,
        contexts=contexts,
    )
    if args.stdout:
        text = render_card(args.checkpoint, **kwargs)
        if args.json:
            print_json({"card": None, "text": text})
        else:
            print(text, end="")
        return 0
    path = write_card(args.checkpoint, plot=not args.no_plot, **kwargs)
    if args.json:
        print_json({"card": str(path)})
    else:
        print(path)
    return 0
