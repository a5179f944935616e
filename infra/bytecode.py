"""Put compiled bytecode into the Lambda package: ``python -m infra.bytecode dist/package/deployment.zip``.

Lambda unpacks the zip on a read-only file system, so Python cannot cache the bytecode of what it
imports: without ``.pyc`` files in the package, every cold start compiles every module again.
Each ``.py`` gets its ``__pycache__/<name>.cpython-311.pyc`` in unchecked-hash mode (valid whatever
the files' times after unzipping), compiled by this interpreter, which must be the runtime's
Python (3.11).
"""
from __future__ import annotations

import argparse
import py_compile
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

RUNTIME = (3, 11)


def add_bytecode(package: Path) -> int:
    """Rewrite ``package`` with a ``.pyc`` beside every ``.py``; returns how many were compiled."""
    if sys.version_info[:2] != RUNTIME:
        raise SystemExit(f"compile the package with Python {RUNTIME[0]}.{RUNTIME[1]}, the functions' runtime "
                         f"(this is {sys.version_info[0]}.{sys.version_info[1]})")
    compiled = 0
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "task"
        with zipfile.ZipFile(package) as archive:
            archive.extractall(root)
            modes = {info.filename: info.external_attr for info in archive.infolist()}
        for source in sorted(root.rglob("*.py")):
            relative = source.relative_to(root).as_posix()
            try:
                py_compile.compile(str(source), dfile=f"/var/task/{relative}", doraise=True,
                                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            except py_compile.PyCompileError as exc:  # a file that is not Python 3.11 (a vendored test): skip it
                print(f"not compiled: {relative}: {exc.msg.splitlines()[-1]}", file=sys.stderr)
                continue
            compiled += 1
        rebuilt = Path(scratch) / "deployment.zip"
        with zipfile.ZipFile(rebuilt, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                name = path.relative_to(root).as_posix()
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = modes.get(name, 0o644 << 16)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
        shutil.move(str(rebuilt), package)
    return compiled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    args = parser.parse_args(argv)
    print(f"{args.package}: {add_bytecode(args.package)} modules compiled")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
