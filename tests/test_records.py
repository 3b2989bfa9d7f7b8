"""Typed provenance records (genbench.records): JSON round trips, the errors for records genbench did not
write, and the legacy readers on files written before the records were typed (tests/fixtures/legacy_records:
the model as "<file> sha256:<hex> official:<name>" text, generation records with "model_sha256")."""

import json
from pathlib import Path

import pytest

from genbench.errors import GenbenchError
from genbench.leaderboard import results_row
from genbench.records import GenerationRecord, ModelProvenance
from genbench.results import write_results
from genbench.sampling.generate import SampleSettings, check_manifest, read_manifest

LEGACY = Path(__file__).parent / "fixtures" / "legacy_records"
SHA = "becfa9a6c0ffee" + "0" * 50


def test_records_round_trip_through_json():
    model = ModelProvenance("demo-sit.pt", SHA, "sit-xl-2-256")
    assert ModelProvenance.from_json(json.loads(json.dumps(model.to_json())), "test") == model
    assert model.label == "demo-sit.pt (becfa9a6)"
    generation = GenerationRecord(3, 4, 40, 12, "shapes suite seed 0", model=model, sampler="ode", steps=50,
                                  cfg_scale=1.5)
    assert GenerationRecord.from_json(json.loads(json.dumps(generation.to_json())), "test") == generation
    world = GenerationRecord(0, 4, 52, 0, "shapes suite seed 0", world="shapes world")
    assert GenerationRecord.from_json(world.to_json(), "test") == world


def test_the_sampling_manifest_holds_a_model_record(tmp_path):
    model = ModelProvenance("model.pt", SHA)
    settings = SampleSettings(num_samples=4, latent_shape=(4, 8, 8), model=model)
    check_manifest(tmp_path, settings)
    assert json.loads((tmp_path / "manifest.json").read_text())["model"] == model.to_json()
    assert read_manifest(tmp_path) == settings


def test_a_sampling_run_an_older_genbench_started_still_resumes(tmp_path):
    # manifests written before ModelProvenance held the model as text; the same settings must resume, and
    # another model must still be refused
    settings = SampleSettings(num_samples=4, latent_shape=(4, 8, 8), model=ModelProvenance("model.pt", SHA))
    old = settings.to_json() | {"model": f"model.pt sha256:{SHA} official:None"}
    (tmp_path / "manifest.json").write_text(json.dumps(old))
    check_manifest(tmp_path, settings)
    other = SampleSettings(num_samples=4, latent_shape=(4, 8, 8), model=ModelProvenance("other.pt", SHA))
    with pytest.raises(GenbenchError, match="changed|other settings"):
        check_manifest(tmp_path, other)


@pytest.mark.parametrize("value", [{"file": "a.pt"}, {"file": "a.pt", "sha256": 3, "official": None},
                                   {"file": "a.pt", "sha256": SHA, "official": None, "extra": 1}, "a.pt", 7])
def test_a_model_record_genbench_did_not_write_is_refused(value):
    with pytest.raises(GenbenchError, match="where: .* is not a model record"):
        ModelProvenance.from_json(value, "where")


def test_a_generation_record_genbench_did_not_write_is_refused():
    with pytest.raises(GenbenchError, match=r"unknown generation record fields \['colour'\]"):
        GenerationRecord.from_json({"seed": 0, "colour": "red"}, "generation.json")
    with pytest.raises(GenbenchError, match="not a generation record genbench wrote"):
        GenerationRecord.from_json({"seed": 0}, "generation.json")
    with pytest.raises(GenbenchError, match="a generation record is a JSON object"):
        GenerationRecord.from_json([1], "generation.json")


def test_legacy_model_text_is_read_by_the_legacy_reader():
    text = f"demo-sit.pt sha256:{SHA} official:None"
    assert ModelProvenance.from_json(text, "old") == ModelProvenance("demo-sit.pt", SHA, None)
    official = ModelProvenance.from_json(f"ckpt.pt sha256:{SHA} official:repa-sit-xl-2", "old")
    assert official.official == "repa-sit-xl-2"


def test_results_written_before_typed_records_still_make_board_rows():
    evaluated = results_row(LEGACY / "eval_model.json", "demo:sit")
    assert evaluated["model"] == "demo-sit.pt (becfa9a6)" and evaluated["cfg"] == "1.0 [0.0, 1.0]"
    assert evaluated["fid"] == 61.868279238881556
    scored = results_row(LEGACY / "geneval_model.json")
    assert scored["model"] == "demo-sit.pt (becfa9a6)" and scored["cfg"] == "1.0"
    world = results_row(LEGACY / "geneval_world.json")
    assert world["model"] == "shapes world (ground-truth scenes, 64 px)" and world["cfg"] == "none"


def test_legacy_and_typed_generation_records_make_the_same_row(tmp_path):
    legacy = json.loads((LEGACY / "geneval_model.json").read_text())
    typed = GenerationRecord.from_json(legacy["provenance"]["geneval"]["generation"], "old")
    assert typed.model == ModelProvenance("/runs/demo/demo-sit.pt", SHA)
    write_results(tmp_path / "new.json", legacy["metrics"], {"geneval": {"generation": typed.to_json()}})
    old, new = results_row(LEGACY / "geneval_model.json"), results_row(tmp_path / "new.json")
    assert (old["model"], old["cfg"]) == (new["model"], new["cfg"])
