"""``gqa-retrofit push OUT REPO_ID``: verify, add a model card, upload to the Hugging Face Hub."""

from __future__ import annotations

import argparse

from ._util import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push",
        help="upload a converted or trained checkpoint (with its model card) to the Hub",
        description="Verify the checkpoint, render README.md if it is missing, create the repo "
        "(if needed) and upload the folder. The token comes from --token, HF_TOKEN or the HF "
        "token file (`hf auth login`) and is never printed. Re-running after an interrupted "
        "upload sends only what is missing.",
    )
    parser.add_argument(
        "checkpoint", metavar="OUT", help="checkpoint directory (convert/train output)"
    )
    parser.add_argument("repo_id", metavar="REPO_ID", help="target repo, owner/name")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument(
        "--revision", metavar="BRANCH", help="branch to push to (created if missing)"
    )
    parser.add_argument("--commit-message", help="commit message")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN or the HF token file)")
    parser.add_argument("--no-verify", action="store_true", help="skip checkpoint verification")
    parser.add_argument(
        "--json", action="store_true", help='print {"repo_id": ..., "url": ...} as JSON'
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..hub.push import push_to_hub

    url = push_to_hub(
        args.checkpoint,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        create_pr=args.create_pr,
        token=args.token,
        verify=not args.no_verify,
    )
    if args.json:
        print_json({"repo_id": args.repo_id, "url": str(url)})
    else:
        print(url)
    return 0
