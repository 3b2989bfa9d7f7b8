import subprocess
import sys


def test_torchvision_imports_next_to_genbench():
    import torchvision

    assert torchvision.__version__


def test_cli_version_and_unknown_verb():
    ok = subprocess.run([sys.executable, "-m", "genbench", "version"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.strip() == __import__("genbench").__version__
    bad = subprocess.run([sys.executable, "-m", "genbench", "no-such-verb"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_typer_exit_code_reaches_the_process(monkeypatch):
    import pytest
    import typer

    from genbench.cli import app, main

    @app.command("exit-code-probe", hidden=True)
    def probe() -> None:
        raise typer.Exit(3)

    monkeypatch.setattr(sys, "argv", ["genbench", "exit-code-probe"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 3
