"""Run every benchmark in turn and print each figure beside its target."""

from __future__ import annotations

import sys

from bench import audit_verify, demo_generation, pdf, statistics, web

BENCHMARKS = [
    ("audit verify over 1M entries", audit_verify.main),
    ("100k demo cases generated", demo_generation.main),
    ("case pages under load (100k cases, 1M audit entries)", web.main),
    ("case-summary PDF, warm process", pdf.main),
    ("statistics dashboard (100k and 1M cases)", statistics.main),
]


def main() -> int:
    failures = 0
    for title, run in BENCHMARKS:
        print(f"== {title} ==", flush=True)
        failures += run([]) != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
