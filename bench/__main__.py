"""Run one benchmark by name: ``python -m bench terminal`` (under ``python -m sandbox.testenv --``)."""

import importlib
import sys

BENCHMARKS = {
    "terminal": "bench.terminal",
    "pipeline": "bench.pipeline",
    "releases": "bench.releases",
    "logproxy": "bench.logproxy",
}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in BENCHMARKS:
        print(f"usage: python -m bench {{{'|'.join(BENCHMARKS)}}}", file=sys.stderr)
        return 2
    return importlib.import_module(BENCHMARKS[argv[0]]).main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
