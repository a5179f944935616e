"""``chalice package`` for the tests that build the AWS package: one at a time per checkout.

Chalice keeps the deployment zip it builds in the project's ``.chalice/deployments`` and copies it
out; two workers packaging the same project at once read each other's half-written zip."""
from __future__ import annotations

import fcntl
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHALICE = Path(sys.executable).parent / "chalice"


def chalice_package(merge_template: Path, out: Path, env: dict[str, str],
                    timeout: float = 900) -> subprocess.CompletedProcess:
    lock = Path(tempfile.gettempdir()) / f"wod-chalice-package-{hashlib.sha1(str(ROOT).encode()).hexdigest()[:12]}.lock"
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        return subprocess.run([str(CHALICE), "package", "--stage", "aws", "--merge-template", str(merge_template),
                               str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
