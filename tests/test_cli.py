"""The medkit command: doctor and fetch, offline."""

import subprocess
import sys

import pytest

from medkit.cli import main


def test_doctor_reports_machine_and_cached_weights(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for word in ("torch", "cpus", "ram", "network", "weights efficientnet_lite0", "bundled", "weights resnet18"):
        assert word in out


def test_fetch_offline_fails_clearly(tmp_cache, capsys):
    assert main(["fetch", "--weights", "resnet18"]) == 2
    err = capsys.readouterr().err
    assert "medkit fetch: error:" in err and "medkit fetch --weights resnet18" in err


def test_fetch_bundled_weights_work_offline(tmp_cache, capsys):
    assert main(["fetch", "--weights", "efficientnet_lite0"]) == 0
    assert "weights efficientnet_lite0:" in capsys.readouterr().out


def test_fetch_unknown_names(tmp_cache, capsys):
    assert main(["fetch", "--data", "imagenet"]) == 2
    assert "Known datasets" in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "medkit.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("doctor", "fetch"):
        assert command in out
