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
