"""--device: `auto` is every command's default, and a device the machine cannot use is refused up front."""

import pytest
import typer.main

from genbench.cli import app
from genbench.distributed import local_device
from genbench.errors import GenbenchError


def _commands(group, prefix: str = ""):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a sub-group (Typer vendors click, so no isinstance)
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def test_every_command_with_a_device_option_defaults_to_auto():
    seen = {}
    for name, command in _commands(typer.main.get_command(app)):
        for param in command.params:
            if param.name == "device":
                seen[name] = param.default
    # the commands that run networks all take --device (a new one must default to auto too)
    assert {"eval", "sample", "train", "probe", "ref build", "tokenizers compare", "geneval score",
            "geneval generate", "clip-score"} <= set(seen)
    assert set(seen.values()) == {"auto"}, seen


def test_auto_is_the_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert local_device("auto") == "cpu"


def test_auto_and_cuda_take_the_local_rank_under_torchrun(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 8)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert local_device("auto") == "cuda:3"
    assert local_device("cuda") == "cuda:3"
    assert local_device("cuda:5") == "cuda:5"
    with pytest.raises(GenbenchError, match="has 8 CUDA device"):
        local_device("cuda:8")


@pytest.mark.parametrize("device, message", [("bogus", "unknown device"), ("cuda:x", "unknown device"),
                                             ("cuda", "CUDA is not available")])
def test_unusable_devices_are_one_line_errors(monkeypatch, device, message):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(GenbenchError, match=message) as error:
        local_device(device)
    assert "\n" not in str(error.value)
