"""GenEval-style object checks (djghosh13/geneval rules) on modern dependencies, CPU or GPU.

prompts: the six tasks, GenEval's prompt generator and metadata validation; detectors: Mask2Former / OWLv2
adapters; colors: CLIP and palette colour classifiers; rules: GenEval's filtering and checks; score: folder
scoring, results.jsonl and the summary; shapes: the checks in the miniature `shapes` world.
"""

from genbench.geneval.detectors import Detection
from genbench.geneval.prompts import CLASSES, COLORS, RELATIONS, TASKS, generate_suite, load_metadata
from genbench.geneval.rules import DEFAULT_RULES, Rules, evaluate, filter_detections, relative_position
from genbench.geneval.score import score_folder, score_image, summarize

__all__ = ["CLASSES", "COLORS", "DEFAULT_RULES", "RELATIONS", "TASKS", "Detection", "Rules", "evaluate",
           "filter_detections", "generate_suite", "load_metadata", "relative_position", "score_folder",
           "score_image", "summarize"]
