"""Results files: round trip, migration of schema-1 files, validation of bad files."""

import json

import pytest

from genbench.errors import GenbenchError
from genbench.results import SCHEMA_VERSION, collect_environment, load_results, write_results


def test_round_trip_keeps_metrics_and_provenance_and_adds_environment(tmp_path):
    metrics = {"fid": 2.061, "is": 270.3, "precision": 0.82, "recall": 0.59}
    provenance = {"model": "sit-xl-2", "sampler": "sde", "steps": 250, "cfg_scale": 1.5,
                  "guidance_interval": [0.0, 0.7], "num_samples": 50000, "class_balanced": True,
                  "reference": {"name": "VIRTUAL_imagenet256_labeled", "sha256": "ab" * 32}, "seed": 0}
    write_results(tmp_path / "r.json", metrics, provenance)
    loaded = load_results(tmp_path / "r.json")
    assert loaded["schema"] == SCHEMA_VERSION
    assert loaded["metrics"] == metrics
    assert {k: loaded["provenance"][k] for k in provenance} == provenance
    for field in ("genbench_version", "torch_version", "device", "date"):
        assert loaded["provenance"][field]
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left behind


def test_environment_names_versions_device_and_utc_date():
    env = collect_environment()
    import torch

    assert env["torch_version"] == torch.__version__
    assert env["device"] == "cpu"
    assert env["date"].endswith("+00:00")


def test_schema_1_file_is_migrated(tmp_path):
    old = {"version": "0.0.1", "fid": 3.5, "sfid": 5.25, "is": 200.0, "extractor": "inception", "seed": 7}
    (tmp_path / "old.json").write_text(json.dumps(old))
    loaded = load_results(tmp_path / "old.json")
    assert loaded["schema"] == SCHEMA_VERSION
    assert loaded["metrics"] == {"fid": 3.5, "sfid": 5.25, "is": 200.0}
    assert loaded["provenance"] == {"genbench_version": "0.0.1", "extractor": "inception", "seed": 7}


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a readable results JSON"),
    ("[1, 2]", "holds a JSON object"),
    (json.dumps({"schema": 99, "metrics": {}}), "newer than this genbench"),
    (json.dumps({"schema": 2, "metrics": {"fid": "low"}}), "'metrics' must map"),
    (json.dumps({"schema": 2, "metrics": {"fid": 1.0}, "provenance": []}), "'provenance' must be"),
    (json.dumps({"schema": 2, "metrics": {"fid": 1.0}, "provenance": {"steps": "9"}}), "provenance 'steps'"),
    (json.dumps({"schema": 2, "metrics": {"fid": 1.0}, "provenance": {"seed": True}}), "provenance 'seed'"),
])
def test_bad_files_raise_one_readable_error(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(GenbenchError, match=message) as error:
        load_results(path)
    assert str(path) in str(error.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(GenbenchError, match="results file not found"):
        load_results(tmp_path / "absent.json")


def test_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(TypeError):
        write_results(tmp_path / "r.json", {"fid": object()}, {})
    with pytest.raises(GenbenchError, match="provenance 'steps'"):
        write_results(tmp_path / "r.json", {"fid": 1.0}, {"steps": 2.5})
    assert list(tmp_path.iterdir()) == []
