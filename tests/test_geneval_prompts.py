"""Prompt suites: GenEval's own 553 prompts from seed 43, the grammar rules, validation, folder layout."""

import hashlib
import json
from collections import Counter

import pytest

from genbench.errors import GenbenchError
from genbench.geneval.prompts import (
    CLASSES,
    IMAGES_PER_PROMPT,
    generate_suite,
    load_metadata,
    plural,
    validate_record,
    with_article,
    write_suite,
)

# SHA-256 of djghosh13/geneval prompts/evaluation_metadata.jsonl (553 lines)
GENEVAL_METADATA_SHA256 = "5c48e0813e812e3c373fa5c8ed07a8f0a483be30272b4427b0559c8048e67c13"


def as_jsonl(records):
    return "".join(json.dumps(r) + "\n" for r in records)


def test_seed_43_reproduces_geneval_metadata_byte_for_byte():
    records = generate_suite(seed=43)
    assert hashlib.sha256(as_jsonl(records).encode()).hexdigest() == GENEVAL_METADATA_SHA256
    assert Counter(r["tag"] for r in records) == {"single_object": 80, "two_object": 99, "counting": 80,
                                                  "colors": 94, "position": 100, "color_attr": 100}
    assert records[0]["prompt"] == "a photo of a bench"


def test_other_seed_gives_new_valid_suite():
    records = generate_suite(seed=7, per_task=20)
    assert as_jsonl(records) != as_jsonl(generate_suite(seed=43, per_task=20))
    for r in records:
        validate_record(r)
    assert not any(c.get("color") and c["class"] == "person" for r in records for c in r["include"])
    counting = [r for r in records if r["tag"] == "counting"]
    assert all(r["exclude"][0]["count"] == r["include"][0]["count"] + 1 for r in counting)


def test_classes_and_grammar():
    assert len(CLASSES) == 80 and CLASSES[64:67] == ("computer mouse", "tv remote", "computer keyboard")
    assert with_article("apple") == "an apple" and with_article("umbrella") == "an umbrella"
    assert with_article("cup") == "a cup"
    assert plural("bus") == "buses" and plural("skis") == "skises" and plural("knife") == "knifes"


@pytest.mark.parametrize("line, problem", [
    ('{"tag": "single_object", "include": [{"class": "cat", "count": 1}]', "not valid JSON"),
    ('{"tag": "dance", "include": [{"class": "cat", "count": 1}], "prompt": "x"}', "tag 'dance'"),
    ('{"tag": "counting", "include": [{"class": "cat", "count": 0}], "prompt": "x"}', "positive integer"),
    ('{"tag": "colors", "include": [{"class": "cat", "count": 1, "color": "teal"}], "prompt": "x"}', "teal"),
    ('{"tag": "position","include": [{"class": "a", "count": 1, "position": ["above", 0]}], "prompt": "x"}',
     "earlier include"),
    ('{"tag": "single_object", "prompt": "x"}', 'missing "include"'),
    ('[1, 2]', "JSON object"),
])
def test_malformed_metadata_names_the_line(tmp_path, line, problem):
    good = json.dumps(generate_suite(per_task=1)[0])
    path = tmp_path / "evaluation_metadata.jsonl"
    path.write_text(f"{good}\n\n{good}\n{line}\n")
    with pytest.raises(GenbenchError, match=rf"evaluation_metadata.jsonl:4: .*{problem}"):
        load_metadata(path)


def test_load_and_write_layout(tmp_path):
    records = generate_suite(seed=1, per_task=2)
    out = write_suite(records, tmp_path / "suite")
    assert load_metadata(out / "evaluation_metadata.jsonl") == records
    assert (out / "generation_prompts.txt").read_text().splitlines() == [r["prompt"] for r in records]
    last = out / f"{len(records) - 1:05d}"
    assert json.loads((last / "metadata.jsonl").read_text()) == records[-1]
    assert (last / "samples").is_dir() and IMAGES_PER_PROMPT == 4
    with pytest.raises(GenbenchError, match="no prompts"):
        (tmp_path / "empty.jsonl").write_text("\n")
        load_metadata(tmp_path / "empty.jsonl")
