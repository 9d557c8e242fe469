"""Run every benchmark in turn and print each figure beside its target."""

from __future__ import annotations

import sys

from bench import audit_verify

BENCHMARKS = [("audit verify over 1M entries", audit_verify.main)]


def main() -> int:
    failures = 0
    for title, run in BENCHMARKS:
        print(f"== {title} ==", flush=True)
        failures += run([]) != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
