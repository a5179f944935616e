"""``python -m local [run|sync]``: start the single-machine stack, or re-sync its workshops.

``python -m local {aws,workers,mail,hub,web}`` runs one part of the stack; ``run`` starts and
supervises them all (``local/stack.py``).
"""
import argparse
import os
import sys
from importlib import import_module

from local.config import LocalConfig

PARTS = {"aws": "local.aws", "workers": "local.workers", "mail": "local.mail", "hub": "local.hub_part",
         "web": "local.web"}


def sync() -> int:
    """Sync ``workshops/`` into a running local stack."""
    config = LocalConfig.from_env()
    os.environ.update(config.app_environment())
    from chalicelib.catalog.__main__ import main as catalog_main

    return catalog_main(["sync", str(config.workshops)])


parser = argparse.ArgumentParser(prog="python -m local", description=__doc__)
parser.add_argument("command", nargs="?", choices=["run", "sync", *PARTS], default="run")
command = parser.parse_args().command
if command == "sync":
    sys.exit(sync())
sys.exit(import_module(PARTS.get(command, "local.stack")).main())
