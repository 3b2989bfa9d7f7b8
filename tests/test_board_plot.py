"""The FID-vs-epochs plot above the published HTML board."""

import re

import pandas as pd
import pytest

from genbench.board_plot import fid_epochs_svg, model_family, parse_epochs, plot_points
from genbench.leaderboard import render


@pytest.mark.parametrize("cell, epochs", [("800", 800.0), ("400K iter", 400e3 * 256 / 1_281_167),
                                          ("7M iter", 7e6 * 256 / 1_281_167), ("80", 80.0),
                                          ("100K iter [uncertain]", 100e3 * 256 / 1_281_167),
                                          ("", None), (None, None), (float("nan"), None), ("n/a", None),
                                          ("0", None)])
def test_epochs_are_read_from_epochs_or_iterations_at_batch_256(cell, epochs):
    assert parse_epochs(cell) == (pytest.approx(epochs) if epochs is not None else None)


@pytest.mark.parametrize("model, family", [("SiT-XL/2", "SiT"), ("SiT-XL/2+REPA", "REPA"),
                                           ("SiT-XL/1+REPA-E", "REPA-E"),
                                           ("LightningDiT (675M)", "LightningDiT"),
                                           ("U-ViT-H/2", "U-ViT"), ("DiT-XL", "DiT"), ("LDM-4", "LDM")])
def test_model_families(model, family):
    assert model_family(model) == family


def _board() -> pd.DataFrame:
    return pd.DataFrame({
        "name": ["a", "b", "c", "mine", "no-epochs", "no-fid"],
        "kind": ["reported", "reported", "reported", "measured", "reported", "reported"],
        "model": ["SiT-XL/2", "SiT-XL/2+REPA", "SiT-XL/2+REPA", "SiT-XL/2+REPA-E", "DiT-XL/2", "DiT-XL/2"],
        "epochs": ["1400", "800", "400K iter", "80", "", "800"],
        "fid": [8.3, 5.9, 7.9, 1.9, 9.6, float("nan")],
    })


def test_one_point_per_plottable_row_coloured_by_family_and_measured_marked():
    points = plot_points(_board())
    assert [p.name for p in points] == ["a", "b", "c", "mine"]
    svg = fid_epochs_svg(_board())
    circles = re.findall(r'<circle class="point( measured)?" data-family="([^"]+)"[^>]*fill="([^"]+)"', svg)
    assert len(circles) == 4
    colours = {}
    for _, family, fill in circles:
        assert colours.setdefault(family, fill) == fill  # one colour per family
    assert len(set(colours.values())) == 3
    assert [family for measured, family, _ in circles if measured] == ["REPA-E"]
    # log axes: the 1400-epoch point is right of the 80-epoch one, FID 8.3 above FID 1.9
    positions = [(float(x), float(y)) for x, y in re.findall(r'class="point[^"]*" data-family="[^"]+" '
                                                            r'cx="([^"]+)" cy="([^"]+)"', svg)]
    by_name = dict(zip(["a", "b", "c", "mine"], positions, strict=True))
    assert by_name["a"][0] > by_name["mine"][0] and by_name["a"][1] < by_name["mine"][1]


def test_html_page_embeds_the_plot_only_when_the_board_has_epochs():
    assert '<svg id="fid-epochs"' in render(_board(), "html")
    assert "<svg" not in render(_board().drop(columns=["epochs"]), "html")
