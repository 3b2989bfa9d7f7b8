"""GenEval's rules on hand-made detections (a fake detector returns the given boxes)."""

import pytest

from genbench.geneval.detectors import Detection
from genbench.geneval.rules import (
    DEFAULT_RULES,
    Rules,
    box_iou,
    evaluate,
    filter_detections,
    relative_position,
)
from genbench.geneval.score import score_image


def det(label, box, score=0.95):
    return Detection(label, tuple(float(v) for v in box), score)


def check(detections, metadata, colors=None, rules=DEFAULT_RULES):
    """Run the full per-image path with a fake detector and a fake colour classifier (box -> colour)."""
    seen = []

    def classify(image, objects, classname):
        seen.append([o.box for o in objects])
        return [colors[o.box] for o in objects]

    correct, reason, details = score_image(None, metadata, lambda image: detections, classify, rules)
    return correct, reason, details, seen


SINGLE = {"tag": "single_object", "include": [{"class": "cat", "count": 1}], "prompt": "a photo of a cat"}
TWO = {"tag": "two_object", "include": [{"class": "cat", "count": 1}, {"class": "dog", "count": 1}],
       "prompt": "a photo of a cat and a dog"}
COUNT3 = {"tag": "counting", "include": [{"class": "cup", "count": 3}],
          "exclude": [{"class": "cup", "count": 4}], "prompt": "a photo of three cups"}
COLOR = {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "red"}],
         "prompt": "a photo of a red car"}
ATTR = {"tag": "color_attr", "include": [{"class": "car", "count": 1, "color": "red"},
                                         {"class": "bus", "count": 1, "color": "blue"}],
        "prompt": "a photo of a red car and a blue bus"}
LEFT = {"tag": "position", "include": [{"class": "cat", "count": 1},
                                       {"class": "dog", "count": 1, "position": ["left of", 0]}],
        "prompt": "a photo of a dog left of a cat"}


def test_single_object_pass_fail_and_strict_threshold():
    assert check([det("cat", (0, 0, 10, 10), 0.31)], SINGLE)[:2] == (True, "")
    assert check([det("cat", (0, 0, 10, 10), 0.3)], SINGLE)[:2] == (False, "expected cat>=1, found 0")
    assert check([det("dog", (0, 0, 10, 10))], SINGLE)[:2] == (False, "expected cat>=1, found 0")
    # every threshold is overridable
    assert check([det("cat", (0, 0, 10, 10), 0.2)], SINGLE, rules=Rules(threshold=0.1))[0]


def test_two_object_includes_are_anded():
    cat, dog = det("cat", (0, 0, 10, 10)), det("dog", (20, 0, 30, 10))
    assert check([cat, dog], TWO)[:2] == (True, "")
    assert check([cat], TWO)[:2] == (False, "expected dog>=1, found 0")
    assert check([], TWO)[:2] == (False, "expected cat>=1, found 0\nexpected dog>=1, found 0")


def test_counting_threshold_and_exclude():
    cups = [det("cup", (20 * i, 0, 20 * i + 10, 10), 0.95) for i in range(4)]
    assert check(cups[:3], COUNT3)[:2] == (True, "")
    assert check(cups, COUNT3)[:2] == (False, "expected cup<4, found 4")
    assert check(cups[:2], COUNT3)[:2] == (False, "expected cup>=3, found 2")
    # counting uses 0.9: a 0.85 cup does not count there (so 3 + one weak cup still passes) ...
    weak = det("cup", (100, 0, 110, 10), 0.85)
    assert check(cups[:3] + [weak], COUNT3)[:2] == (True, "")
    # ... but it does for other tasks, and the counting threshold is overridable
    assert len(filter_detections(cups[:3] + [weak], "two_object")["cup"]) == 4
    assert check(cups[:3] + [weak], COUNT3, rules=Rules(counting_threshold=0.8))[:2] == (
        False, "expected cup<4, found 4")


def test_max_objects_cap_and_nms():
    many = [det("cup", (i, 0, i + 10, 10), 0.5 + i / 100) for i in range(20)]
    kept = filter_detections(many, "two_object")["cup"]
    assert len(kept) == 16 and [d.score for d in kept] == sorted((d.score for d in many), reverse=True)[:16]
    assert len(filter_detections(many, "two_object", Rules(max_objects=5))["cup"]) == 5
    a, b, c = det("cup", (0, 0, 9, 9), 0.9), det("cup", (5, 0, 14, 9), 0.8), det("cup", (2, 0, 11, 9), 0.7)
    assert len(filter_detections([a, b, c], "colors")["cup"]) == 3  # NMS off by default
    # +1-pixel IoU: a vs b = 50 / 150, a vs c = 80 / 120, b vs c = 70 / 130
    assert box_iou(a.box, b.box) == pytest.approx(1 / 3) and box_iou(a.box, c.box) == pytest.approx(2 / 3)
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 1.0
    kept = filter_detections([a, b, c], "colors", Rules(max_overlap=0.5))["cup"]
    assert [d.score for d in kept] == [0.9, 0.8]


def test_colors_checked_on_top_count_objects():
    blue, red = det("car", (0, 0, 10, 10), 0.9), det("car", (20, 0, 30, 10), 0.8)
    palette = {blue.box: "blue", red.box: "red"}
    correct, reason, _, seen = check([red, blue], COLOR, palette)
    assert (correct, reason) == (False, "expected red car>=1, found 0 red; and 1 blue")
    assert seen == [[blue.box]]  # only the top-scoring car was classified
    assert check([det("car", (20, 0, 30, 10), 0.95), blue], COLOR, palette)[:2] == (True, "")


def test_color_attr_pass_and_swapped_colours():
    car, bus = det("car", (0, 0, 10, 10)), det("bus", (20, 0, 30, 10))
    assert check([car, bus], ATTR, {car.box: "red", bus.box: "blue"})[:2] == (True, "")
    correct, reason, _, _ = check([car, bus], ATTR, {car.box: "blue", bus.box: "red"})
    assert not correct
    assert reason == ("expected red car>=1, found 0 red; and 1 blue\n"
                      "expected blue bus>=1, found 0 blue; and 1 red")


def test_position_rules():
    cat = det("cat", (40, 0, 60, 20))
    assert check([cat, det("dog", (0, 0, 20, 20))], LEFT)[:2] == (True, "")
    assert check([cat, det("dog", (80, 0, 100, 20))], LEFT)[:2] == (
        False, "expected dog left of target, found right of target")
    # overlapping boxes give no relation at all
    assert check([cat, det("dog", (38, 0, 58, 20))], LEFT)[:2] == (
        False, "expected dog left of target, found  target")
    # a missing reference fails the include and the relation
    assert check([det("dog", (0, 0, 20, 20))], LEFT)[:2] == (
        False, "expected cat>=1, found 0\nno target for dog to be left of")


def test_relative_position_margin_and_diagonal():
    b = det("b", (0, 0, 60, 60))
    near = det("a", (-10, 0, 50, 60))  # centre 10 px left; margin 0.1 * (60 + 60) = 12 swallows it
    assert relative_position(near, b) == set()
    assert relative_position(near, b, margin=0.05) == set()  # 10 - 6 = 4 left: -0.4 of the offset, not < -0.5
    assert relative_position(near, b, margin=0.02) == {"left of"}  # 10 - 2.4 = 7.6: -0.76
    diagonal = det("a", (100, 100, 160, 160))  # offset (100, 100): both components 88 / 141.4 = 0.62 > 0.5
    assert relative_position(diagonal, b) == {"right of", "below"}
    above = det("a", (5, -100, 65, -40))  # offset (5, -100): x shrinks to 0, y dominates
    assert relative_position(above, b) == {"above"}


def test_evaluate_needs_colour_classifier_for_colour_clauses():
    with pytest.raises(ValueError, match="colour"):
        evaluate({"car": [det("car", (0, 0, 1, 1))]}, COLOR, None)


def test_details_record_kept_boxes_and_scores():
    _, _, details, _ = check([det("cat", (1, 2, 3, 4), 0.5), det("cat", (0, 0, 1, 1), 0.1)], SINGLE)
    assert details == {"cat": [[1.0, 2.0, 3.0, 4.0, 0.5]]}
