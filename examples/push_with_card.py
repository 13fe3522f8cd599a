"""Publish a retrofitted checkpoint to the Hub with a generated model card.

Command::

    HF_TOKEN=hf_... python examples/push_with_card.py CHECKPOINT OWNER/NAME [--private]

``CHECKPOINT`` is the output of ``convert``, ``train`` or ``retrofit`` (it holds a
``gqa_retrofit.json`` manifest). The card (``README.md``) is rendered from the manifest and the
estimator's cost table, then the folder is verified and uploaded. The token comes from
``HF_TOKEN`` or the huggingface_hub login and is never printed. ``HF_ENDPOINT`` selects another
Hub endpoint. The same as ``gqa-retrofit card CHECKPOINT`` and ``gqa-retrofit push``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="push a checkpoint with its model card")
    parser.add_argument("checkpoint")
    parser.add_argument("repo_id")
    parser.add_argument("--private", action="store_true")
    args = parser.parse_args(argv)

    from gqa_retrofit.hub.card import write_card
    from gqa_retrofit.hub.push import push_to_hub

    card = write_card(args.checkpoint, repo_id=args.repo_id)
    print(f"card: {card}")
    url = push_to_hub(args.checkpoint, args.repo_id, private=args.private)
    print(f"pushed: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
