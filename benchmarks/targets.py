"""Every performance target of the service, measured in one run, each next to its figure.

Run: ``.venv/bin/python benchmarks/targets.py [--quick] [--only NAME,...] [--log FILE]``.

It runs the benchmarks that carry targets one after the other, in child processes (so that
each starts from a fresh interpreter and none shares the machine with another), streams
their output to ``--log`` (default ``benchmarks-targets.log`` in the current directory), and
prints at the end one table of the lines each benchmark printed as ``target: ...`` (its
figure, and ``met`` or ``NOT met``). The peers (DBOS) run inside the benchmarks that compare
with them, in the same run. ``--quick`` makes every benchmark smaller (for trying the script
out; the figures of the documents come from a full run). Asserts nothing; exits 0 unless a
benchmark failed to run.

What bounds a target that is missed is not guessed here: docs/operations/scaling.md gives,
per target, the profile that explains it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Step:
    name: str
    arguments: tuple[str, ...]
    quick: tuple[str, ...]


STEPS = (
    Step(
        "throughput",
        ("throughput.py", "--peer"),
        ("throughput.py", "--peer", "--n", "2000", "--peer-n", "500", "--light-n", "100"),
    ),
    Step(
        "durable-steps",
        ("durable_steps.py", "--peer"),
        ("durable_steps.py", "--peer", "--n", "500", "--peer-n", "300"),
    ),
    Step(
        "events",
        (
            "events.py",
            "--source",
            "rabbitmq",
            "--events",
            "50000",
            "--skip-http",
            "--skip-database",
            "--skip-matching",
        ),
        (
            "events.py",
            "--source",
            "rabbitmq",
            "--events",
            "5000",
            "--skip-http",
            "--skip-database",
            "--skip-matching",
        ),
    ),
    Step(
        "workers",
        ("workers.py", "--n", "10000", "--concurrency", "32"),
        ("workers.py", "--n", "2000", "--concurrency", "32", "--warmup", "200"),
    ),
    Step(
        "timers",
        ("timers.py", "--timers", "100000", "--window", "60"),
        ("timers.py", "--timers", "10000", "--window", "10", "--calibrate", "1000"),
    ),
)


def run_step(step: Step, quick: bool, log: Path) -> tuple[list[str], int, float]:
    """Run ``step``; return its ``target:`` lines, its exit code and its seconds."""
    command = [sys.executable, str(HERE / (step.quick if quick else step.arguments)[0])]
    command += (step.quick if quick else step.arguments)[1:]
    started = time.monotonic()
    targets: list[str] = []
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=HERE
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                out.write(line)
                out.flush()
                print(f"[{step.name}] {line}", end="", flush=True)
                if line.startswith("target:"):
                    targets.append(line.removeprefix("target:").strip())
            code = process.wait()
    return targets, code, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, to try it out")
    parser.add_argument(
        "--only", default="", help="comma-separated steps: " + ",".join(s.name for s in STEPS)
    )
    parser.add_argument("--log", type=Path, default=Path("benchmarks-targets.log"))
    args = parser.parse_args()
    chosen = [s for s in STEPS if not args.only or s.name in args.only.split(",")]
    if not chosen:
        raise SystemExit(f"no step named {args.only!r}; the steps: {[s.name for s in STEPS]}")
    rows: list[tuple[str, str]] = []
    failed = False
    for step in chosen:
        targets, code, seconds = run_step(step, args.quick, args.log.resolve())
        if code != 0:
            failed = True
            rows.append((step.name, f"the benchmark failed (exit code {code}); see {args.log}"))
        rows.extend((step.name, target) for target in targets)
        if code == 0 and not targets:
            rows.append((step.name, "printed no target (its peer may have failed to run)"))
        print(f"[{step.name}] took {seconds:.0f}s", flush=True)
    width = max(len(name) for name, _ in rows)
    print("\ntargets (this machine, this run):")
    for name, text in rows:
        print(f"  {name:<{width}}  {text}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
