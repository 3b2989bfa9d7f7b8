"""The one extraction loop (genbench.extraction.stream_features) that eval, the probe and the tokenizer
comparison share: every sample once in order, progress counted, non-finite floating outputs refused with
the samples named, other outputs passed through."""

import numpy as np
import pytest
import torch

from genbench.errors import GenbenchError
from genbench.extraction import stream_features
from genbench.probe import extract_features
from genbench.sources import TensorSource


def _images(n: int = 10) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_every_sample_once_in_order_with_progress_and_slices():
    images, seen = _images(), []
    batches = stream_features(TensorSource(images), lambda x, index: {"mean": x.float().mean(dim=(1, 2, 3))},
                              batch_size=4, indices=range(2, 9), progress=seen.append)
    outputs = list(batches)
    assert [len(index) for _, index in outputs] == [4, 3] and seen == [4, 3]
    assert torch.equal(torch.cat([index for _, index in outputs]), torch.arange(2, 9))
    means = torch.cat([o["mean"] for o, _ in outputs])
    torch.testing.assert_close(means, images[2:9].float().mean(dim=(1, 2, 3)))


def test_non_finite_rows_name_the_samples_the_producer_and_the_fix():
    def features(x, index):
        rows = x.float().flatten(1)
        rows[index == 5] = float("nan")
        return {"rows": rows, "uint8": x, "timing": 1.5}  # integers and non-tensors are not checked

    with pytest.raises(GenbenchError) as error:
        list(stream_features(TensorSource(_images()), features, batch_size=4, producer="the toy network",
                             fix="retrain it"))
    message = str(error.value)
    assert "the toy network produced non-finite 'rows' features for samples 4..7; retrain it" in message
    # the probe's rows go through the same check
    def rows_only(x, index):
        return {"rows": features(x, index)["rows"]}

    with pytest.raises(GenbenchError, match="non-finite 'rows' features for samples 4..7; check the checkp"):
        extract_features(TensorSource(_images()), rows_only, batch_size=4)


def test_the_probe_keeps_rows_in_sample_order_whatever_the_batching():
    images = _images(9)
    rows = extract_features(TensorSource(images), lambda x, _: {"flat": x.float().flatten(1)}, batch_size=4)
    np.testing.assert_array_equal(rows["flat"], images.float().flatten(1).numpy())
