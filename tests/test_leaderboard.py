"""Leaderboards: measured rows from results files, concurrent appends, rendering, the ImageNet board."""

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_main as run_cli

from genbench.errors import GenbenchError
from genbench.leaderboard import (
    FORMATS,
    append_row,
    read_board,
    render,
    results_row,
    sort_board,
)
from genbench.records import GenerationRecord, ModelProvenance
from genbench.results import write_results

REPO = Path(__file__).resolve().parents[1]
IMAGENET_BOARD = REPO / "leaderboards" / "imagenet256.csv"


def genbench(*args) -> subprocess.CompletedProcess:
    """The real console script in a fresh process (slow to start: used once)."""
    return subprocess.run([sys.executable, "-m", "genbench", *args], capture_output=True, text=True, cwd=REPO)



@pytest.fixture
def mixed_board(tmp_path):
    """A board with two reported rows and one measured row added through the CLI."""
    board = tmp_path / "board.csv"
    pd.DataFrame([
        {"name": "SiT-XL/2", "kind": "reported", "source": "paper T4", "epochs": "1400", "cfg": "yes",
         "fid": 2.06, "sfid": 4.5, "is": 270.27, "precision": 0.82, "recall": 0.59},
        {"name": "DiT-XL/2", "kind": "reported", "source": "paper T4", "epochs": "1400", "cfg": "yes",
         "fid": 2.27, "sfid": 4.6, "is": 278.24, "precision": 0.83, "recall": 0.57},
    ]).to_csv(board, index=False)
    write_results(tmp_path / "run.json", {"fid": 1.98765, "is": 281.04, "precision": 0.8149, "kid": 0.00123},
                  {"model": "my-sit", "tokenizer": "sd-vae", "cfg_scale": 1.5, "guidance_interval": [0, 0.7]})
    append_row(board, results_row(tmp_path / "run.json", "mine"))
    return board


def test_add_appends_a_measured_row_with_provenance(mixed_board):
    board = read_board(mixed_board)
    assert list(board["name"]) == ["SiT-XL/2", "DiT-XL/2", "mine"]
    mine = board.iloc[2]
    assert mine["kind"] == "measured" and mine["tokenizer"] == "sd-vae" and mine["cfg"] == "1.5 [0, 0.7]"
    assert mine["fid"] == pytest.approx(1.98765) and mine["kid"] == pytest.approx(0.00123)
    assert "run.json" in mine["source"]
    assert pd.isna(board.iloc[0]["kid"])  # a new metric column is empty for older rows


def test_row_names_the_sampled_checkpoint_from_the_sampling_record(tmp_path):
    manifest = {"model": ModelProvenance("demo-sit.pt", "6ce1d1a5" + "0" * 56).to_json(), "cfg_scale": 1.8,
                "guidance_interval": [0.0, 0.7]}
    write_results(tmp_path / "eval.json", {"fid": 3.0}, {"sampling": manifest})
    generation = GenerationRecord(0, 1, 1, 0, "shapes suite seed 0",
                                  model=ModelProvenance("/runs/ckpt/0001000.pt", "abcdef12" + "0" * 56))
    write_results(tmp_path / "geneval.json", {"geneval_overall": 0.5},
                  {"geneval": {"generation": generation.to_json()}})
    evaluated, scored = results_row(tmp_path / "eval.json"), results_row(tmp_path / "geneval.json")
    assert evaluated["model"] == "demo-sit.pt (6ce1d1a5)" and evaluated["cfg"] == "1.8 [0.0, 0.7]"
    assert scored["model"] == "0001000.pt (abcdef12)" and scored["cfg"] == "none"


def _append_many(board: str, results: str, worker: int, count: int) -> None:
    for i in range(count):
        append_row(board, results_row(results, f"w{worker}-{i}"))


def test_concurrent_appends_lose_no_row(tmp_path):
    write_results(tmp_path / "r.json", {"fid": 3.0, "is": 100.0}, {"model": "m"})
    board = tmp_path / "board.csv"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(str(board), str(tmp_path / "r.json"), w, 5))
               for w in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    names = read_board(board)["name"].tolist()
    assert len(names) == 40
    assert sorted(names) == sorted(f"w{w}-{i}" for w in range(8) for i in range(5))


def test_every_format_shows_reported_versus_measured(mixed_board):
    board = read_board(mixed_board)
    md = render(board, "md")
    assert "| mine† | measured |" in md and "| SiT-XL/2 | reported |" in md and "† measured" in md
    latex = render(board, "latex")
    assert r"mine$^\dagger$ & measured" in latex and r"SiT-XL/2 & reported" in latex
    assert r"\toprule" in latex and r"\bottomrule" in latex and "measured: computed by genbench" in latex
    page = render(board, "html")
    assert page.count('<tr class="measured">') == 1 and page.count('<tr class="reported">') == 2
    assert "tr.measured{" in page and "measured</span>" in page
    rows = json.loads(render(board, "json"))
    assert [r["kind"] for r in rows["rows"]] == ["reported", "reported", "measured"]
    assert "measured" in rows["legend"]
    csv_rows = render(board, "csv").splitlines()
    assert csv_rows[0].split(",")[:2] == ["name", "kind"] and csv_rows[3].startswith("mine,measured,")


def test_numbers_are_formatted_per_metric(mixed_board):
    md = render(read_board(mixed_board), "md")
    mine = next(line for line in md.splitlines() if line.startswith("| mine"))
    cells = [c.strip() for c in mine.strip("|").split("|")]
    header = [c.strip() for c in md.splitlines()[0].strip("|").split("|")]
    row = dict(zip(header, cells, strict=True))
    assert (row["fid"], row["is"], row["precision"], row["kid"], row["sfid"]) == ("1.99", "281.0", "0.81",
                                                                                    "0.0012", "–")


def test_sort_is_direction_aware_with_missing_values_last(mixed_board):
    board = read_board(mixed_board)
    assert sort_board(board, "fid")["name"].tolist() == ["mine", "SiT-XL/2", "DiT-XL/2"]
    assert sort_board(board, "is")["name"].tolist() == ["mine", "DiT-XL/2", "SiT-XL/2"]
    assert sort_board(board, "sfid")["name"].tolist() == ["SiT-XL/2", "DiT-XL/2", "mine"]
    with pytest.raises(GenbenchError, match="no such column"):
        sort_board(board, "nope")


def test_html_page_is_self_contained(mixed_board):
    page = render(read_board(mixed_board), "html")
    assert "<style>" in page and "<script>" in page
    for external in ("http://", "https://", "src=", "<link"):
        assert external not in page


def test_tokenizer_board_uses_the_same_code(tmp_path):
    board = tmp_path / "tokenizers.csv"
    rows = [("sd-vae", {"rfid": 0.61, "psnr": 26.1, "ssim": 0.745, "lpips": 0.132, "probe": 42.0}),
            ("va-vae", {"rfid": 0.28, "psnr": 27.7, "ssim": 0.790, "lpips": 0.097, "probe": 55.5})]
    for name, metrics in rows:
        write_results(tmp_path / f"{name}.json", metrics, {"tokenizer": name})
        append_row(board, results_row(tmp_path / f"{name}.json", name))
    tokenizers = read_board(board)
    assert sort_board(tokenizers, "rfid")["name"].tolist() == ["va-vae", "sd-vae"]
    assert sort_board(tokenizers, "lpips")["name"].tolist() == ["va-vae", "sd-vae"]
    assert sort_board(tokenizers, "psnr")["name"].tolist() == ["va-vae", "sd-vae"]
    md = render(tokenizers, "md")
    assert "| rfid | psnr | ssim | lpips | probe |" in md and "| 0.28 | 27.70 | 0.790 | 0.097 | 55.5 |" in md


def test_add_cli_in_a_real_process(tmp_path):
    write_results(tmp_path / "run.json", {"fid": 5.0}, {"model": "m"})
    added = genbench("leaderboard", "add", str(tmp_path / "run.json"), "--board", str(tmp_path / "b.csv"))
    assert added.returncode == 0, added.stderr
    assert read_board(tmp_path / "b.csv")[["name", "kind", "fid"]].values.tolist() == [["m", "measured", 5.0]]


def test_show_and_publish_cli(mixed_board, tmp_path, capsys, monkeypatch):
    code, out, err = run_cli(capsys, monkeypatch, "leaderboard", "show", "--board", str(mixed_board),
                             "--format", "md", "--sort", "fid")
    assert code == 0, err
    assert out.splitlines()[2].startswith("| mine† | measured |")
    for fmt, suffix in [("html", "html"), ("latex", "tex"), ("json", "json"), ("csv", "csv"), ("md", "md")]:
        target = tmp_path / f"board.{suffix}"
        code, _, err = run_cli(capsys, monkeypatch, "leaderboard", "publish", "--board", str(mixed_board),
                               "--out", str(target))
        assert code == 0, err
        assert target.read_text() == render(read_board(mixed_board), fmt)
    assert set(FORMATS) == {"md", "csv", "html", "latex", "json"}


@pytest.mark.parametrize("args, message", [
    (["show", "--board", "missing.csv"], "leaderboard not found"),
    (["show", "--board", "BOARD", "--format", "docx"], "--format docx"),
    (["publish", "--board", "BOARD", "--out", "x.docx"], "cannot tell the format"),
    (["add", "absent.json", "--board", "BOARD"], "results file not found"),
])
def test_cli_bad_input_exits_2_with_one_line(mixed_board, tmp_path, capsys, monkeypatch, args, message):
    args = [a.replace("BOARD", str(mixed_board)).replace("x.docx", str(tmp_path / "x.docx")) for a in args]
    code, _, err = run_cli(capsys, monkeypatch, "leaderboard", *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.docx").exists()


def test_bad_kind_is_rejected(tmp_path):
    board = tmp_path / "b.csv"
    board.write_text("name,kind,fid\na,guessed,1.0\n")
    with pytest.raises(GenbenchError, match="every row is one of reported, measured"):
        read_board(board)


def test_imagenet_board_rows_carry_kind_and_source():
    board = read_board(IMAGENET_BOARD)
    assert len(board) >= 100
    assert (board["kind"] == "reported").all()
    assert board["source"].str.strip().str.len().gt(10).all()
    assert board["name"].is_unique
    assert board["fid"].notna().all()
    assert "†" not in IMAGENET_BOARD.read_text()  # the dagger marks measured rows only
    # both regimes are present and labelled
    assert {"none", "yes"} <= set(board["cfg"])


def test_imagenet_board_spot_values_match_the_sources():
    board = read_board(IMAGENET_BOARD).set_index("name")
    repa = board.loc["REPA-T4 SiT-XL/2+REPA* 800ep"]
    assert (repa["fid"], repa["sfid"], repa["is"], repa["precision"], repa["recall"]) == (1.42, 4.70, 305.7,
                                                                                         0.80, 0.65)
    assert "tab_w_cfg.png" in repa["source"]
    lightning = board.loc["LightningDiT-table LightningDiT 800ep"]
    assert (lightning["fid"], lightning["is"]) == (2.17, 205.6) and lightning["cfg"] == "none"
    e2e = board.loc["REPA-E-oct25 E2E-VAVAE + SiT-XL/1 + REPA 800ep cfg"]
    assert e2e["fid"] == 1.12 and "2504.10483v3" in e2e["source"] and e2e["cfg"] == "2.4 [0, 0.73]"
