"""The GenEval board of the shapes world as markdown: one row per results file of `genbench geneval score`
(`NAME=PATH`), each task's score with its 95% prompt-bootstrap interval, the overall, the CLIP score when
the results carry one, then the failed images of each task by kind of failure.

    python scripts/geneval_shapes_table.py world=runs/g/world.json demo-t2i=runs/g/demo-t2i.json --out T.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genbench.geneval.prompts import TASKS
from genbench.io import write_text_atomic
from genbench.results import load_results


def cell(metrics: dict, key: str) -> str:
    if key not in metrics:
        return "–"
    low, high = metrics.get(f"{key}_ci_low"), metrics.get(f"{key}_ci_high")
    interval = f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else ""
    return f"{metrics[key]:.3f}{interval}"


def board(rows: list[tuple[str, dict]]) -> str:
    header = ["images", "prompts", "overall", *TASKS, "CLIP score"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for name, document in rows:
        metrics = document["metrics"]
        clip = f"{metrics['clip_score']:.2f}" if "clip_score" in metrics else "–"
        prompts = document["provenance"]["geneval"]["prompts"]
        cells = [name, str(prompts), cell(metrics, "geneval_overall"),
                 *(cell(metrics, f"geneval_{task}") for task in TASKS), clip]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Failed images by the kind of their first failed clause (GenEval's reason strings):", "",
              "| images | " + " | ".join(TASKS) + " |", "|---|" + "---|" * len(TASKS)]
    for name, document in rows:
        failures = document["provenance"]["geneval"].get("failures", {})
        lines.append(f"| {name} | " + " | ".join(kinds(failures.get(task, {})) for task in TASKS) + " |")
    return "\n".join(lines) + "\n"


def kinds(counts: dict[str, int]) -> str:
    found = sorted(counts.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{kind} {count}" for kind, count in found) or "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="NAME=PATH of a `geneval score` results JSON")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--note", default="", help="Text put under the tables.")
    args = parser.parse_args()
    rows = []
    for item in args.results:
        name, _, path = item.partition("=")
        rows.append((name, load_results(path)))
    text = board(rows) + (f"\n{args.note}\n" if args.note else "")
    write_text_atomic(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
