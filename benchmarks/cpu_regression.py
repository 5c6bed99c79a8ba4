"""Does the CPU path get slower? ``kapao-edge bench`` of this checkout against a baseline checkout.

Both run the same ONNX files on this machine, alternating (baseline, current) for ``--rounds``
rounds in fresh processes so drift hits both alike; the table gives the median end-to-end ms per
frame of each and the ratio. The baseline is a source tree of an older commit with its C++
post-processor built in place (``kapao_edge/_postproc*.so``), e.g.

    git worktree add --detach ../baseline <commit>
    cmake -S ../baseline -B ../baseline/build -DKAPAO_BUILD_PYTHON=ON -DKAPAO_BUILD_TESTS=OFF \\
        -DKAPAO_BUILD_EXAMPLES=OFF -Dpybind11_DIR=$(python -c "import pybind11; print(pybind11.get_cmake_dir())")
    cmake --build ../baseline/build && cp ../baseline/build/_postproc*.so ../baseline/kapao_edge/
    python benchmarks/cpu_regression.py --baseline ../baseline -e kapao_s.onnx -e kapao_s_int8_cpu.onnx
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# Runs the CLI of the source tree in argv[1]: the editable install's import redirect is removed first,
# so ``kapao_edge`` resolves to that tree and not to the installed checkout.
_RUNNER = """
import sys
tree = sys.argv.pop(1)
sys.meta_path = [f for f in sys.meta_path if "Redirect" not in type(f).__name__]
sys.path.insert(0, tree)
import kapao_edge
assert kapao_edge.__file__.startswith(tree), kapao_edge.__file__
from kapao_edge.cli import main
sys.argv[0] = "kapao-edge"
main()
"""


def bench_ms(tree: Path, engine: Path, args: argparse.Namespace, out: Path, *, old_grammar: bool) -> float:
    """Median end-to-end ms per frame of one engine, one fresh process."""
    size = [str(args.imgsz), str(args.imgsz)] if old_grammar else [str(args.imgsz)]  # --imgsz H W before the one grammar
    command = [
        sys.executable, "-c", _RUNNER, str(tree), "bench", "-e", str(engine), "--imgsz", *size,
        "--iters", str(args.iters), "--warmup", str(args.warmup), "--json", str(out),
    ]
    if args.threads:
        command += ["--threads", str(args.threads)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    result = json.loads(out.read_text())["results"][0]
    return result["total"]["p50"] / result["batch"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="source tree of the older commit")
    parser.add_argument("-e", "--engine", type=Path, action="append", required=True)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    current = Path(__file__).resolve().parents[1]
    trees = {"baseline": args.baseline.resolve(), "current": current}
    samples: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            for engine in args.engine:
                for label, tree in trees.items():
                    ms = bench_ms(tree, engine, args, Path(tmp) / "bench.json", old_grammar=label == "baseline")
                    samples.setdefault((engine.name, label), []).append(ms)
                    print(f"round {round_index + 1}: {engine.name} {label} {ms:.1f} ms/frame", flush=True)
    print("\n| engine | baseline ms/frame | current ms/frame | current / baseline |\n|---|---|---|---|")
    for engine in args.engine:
        old = statistics.median(samples[(engine.name, "baseline")])
        new = statistics.median(samples[(engine.name, "current")])
        print(f"| {engine.name} | {old:.1f} | {new:.1f} | {new / old:.3f} |")


if __name__ == "__main__":
    main()
