"""``python -m local [run|sync]``: start the single-machine stack, or re-sync its workshops."""
import argparse
import os
import sys

from local.config import LocalConfig
from local.stack import main


def sync() -> int:
    """Sync ``workshops/`` into a running local stack."""
    config = LocalConfig.from_env()
    os.environ.update(config.app_environment())
    from chalicelib.catalog.__main__ import main as catalog_main

    return catalog_main(["sync", str(config.workshops)])


parser = argparse.ArgumentParser(prog="python -m local", description=__doc__)
parser.add_argument("command", nargs="?", choices=["run", "sync"], default="run")
sys.exit(sync() if parser.parse_args().command == "sync" else main())
