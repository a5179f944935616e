"""Cold start of the API Lambda: how long ``import app`` takes, and how big the package is.

    .venv/bin/python bench/cold_start.py [--runs 9] [--region us-east-1]

1. builds the AWS package as ``make package`` does (merge template + ``chalice package``);
2. makes a clean virtualenv holding only ``requirements.txt`` (cached under ``--work``);
3. unpacks ``deployment.zip`` as Lambda does (``/var/task``) and runs
   ``python -X importtime -c "import app"`` there ``--runs`` times, each in a fresh process;
4. prints the import time of ``app`` (target: at most 300 ms), what the first catalog
   request adds (its modules are imported lazily, on first use), the heaviest imports, and
   the package size against Lambda's 250 MB unzipped limit.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 300
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


def build_package(work: Path, region: str) -> Path:
    out = work / "package"
    shutil.rmtree(out, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WOD_"))}
    env["AWS_DEFAULT_REGION"] = region
    run([sys.executable, "-m", "infra.merge", "--out", str(work / "merge-template.json")], cwd=ROOT, env=env)
    chalice = Path(sys.executable).parent / "chalice"
    run([str(chalice), "package", "--stage", "aws", "--merge-template", str(work / "merge-template.json"), str(out)],
        cwd=ROOT, env=env)
    run([sys.executable, "-m", "infra.bytecode", str(out / "deployment.zip")], cwd=ROOT, env=env)
    return out / "deployment.zip"


def clean_venv(work: Path) -> Path:
    requirements = (ROOT / "requirements.txt").read_bytes()
    venv = work / f"venv-{hashlib.sha1(requirements).hexdigest()[:10]}"
    python = venv / "bin" / "python"
    if not (venv / ".ready").exists():
        shutil.rmtree(venv, ignore_errors=True)
        print(f"creating a clean virtualenv with requirements.txt only: {venv}", flush=True)
        run([_base_python(), "-m", "venv", str(venv)])
        run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r",
             str(ROOT / "requirements.txt")])
        (venv / ".ready").touch()
    return python


def _base_python() -> str:
    """The interpreter the project venv was made from (a clean one, not the venv itself)."""
    return getattr(sys, "_base_executable", None) or shutil.which("python3.11") or "python3"


def unpack(zip_path: Path, work: Path) -> Path:
    task = work / "task"
    shutil.rmtree(task, ignore_errors=True)
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(task)
    return task


FIRST_REQUEST = ("import time, app; t = time.perf_counter(); "
                 "import chalicelib.services.registrations as r, chalicelib.adapters.render as m; r.register; m.email; "
                 "print((time.perf_counter() - t) * 1000)")


def import_times(python: Path, task: Path, statement: str) -> tuple[dict[str, int], float, str]:
    """Cumulative microseconds per top-level import, the process's wall time in ms, its output."""
    env = {"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1", "LANG": "C.UTF-8"}
    started = time.perf_counter()
    done = subprocess.run([str(python), "-X", "importtime", "-c", statement], cwd=task, env=env,
                          capture_output=True, text=True, check=True)
    wall = (time.perf_counter() - started) * 1000
    cumulative: dict[str, int] = {}
    for line in done.stderr.splitlines():
        match = LINE.match(line)
        if match:
            cumulative[match.group(4)] = int(match.group(2))
    return cumulative, wall, done.stdout


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):6.1f} ms  (min {min(values):.1f}, max {max(values):.1f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--work", type=Path, default=Path("/tmp/wod-cold-start"))
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)

    print("building the AWS package (make package) ...", flush=True)
    zip_path = build_package(args.work, args.region)
    python = clean_venv(args.work)
    task = unpack(zip_path, args.work)

    app_ms, first_ms, wall_ms, baseline_ms = [], [], [], []
    heaviest: Counter = Counter()
    for _ in range(args.runs):
        times, wall, _ = import_times(python, task, "import app")
        app_ms.append(times["app"] / 1000)
        wall_ms.append(wall)
        for name, value in times.items():
            if name != "app":
                heaviest[name] = max(heaviest[name], value)
        first_ms.append(float(import_times(python, task, FIRST_REQUEST)[2]))
        baseline_ms.append(import_times(python, task, "pass")[1])

    unzipped = sum(info.file_size for info in zipfile.ZipFile(zip_path).infolist())
    by_top: Counter = Counter()
    for info in zipfile.ZipFile(zip_path).infolist():
        by_top[info.filename.split("/")[0]] += info.file_size
    median = statistics.median(app_ms)
    print(f"\nAPI Lambda cold start, {args.runs} fresh processes, clean venv ({python.parent.parent.name}):")
    print(f"  import app                       {summary(app_ms)}   target <= {TARGET_MS} ms: "
          f"{'OK' if median <= TARGET_MS else 'OVER'} ({median / TARGET_MS:.2f}x of the budget)")
    print(f"  then the first request's modules {summary(first_ms)}   (loaded lazily, by the first request)")
    print(f"  process wall time                {summary(wall_ms)}   (interpreter alone: "
          f"{statistics.median(baseline_ms):.1f} ms)")
    top = [(name, value) for name, value in heaviest.most_common(40) if "." not in name][:5]
    print("  heaviest imports under app: " + ", ".join(f"{name} {value / 1000:.1f} ms" for name, value in top))
    print(f"\nDeployment package: {zip_path.stat().st_size / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped "
          f"({unzipped / LAMBDA_UNZIPPED_LIMIT:.0%} of Lambda's 250 MB limit)")
    print("  largest: " + ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in by_top.most_common(5)))
    return 0 if median <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
