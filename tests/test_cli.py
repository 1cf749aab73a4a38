"""The medkit command: doctor and fetch offline, --json, exit codes, and what stays unimported."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medkit.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, env=None, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def test_doctor_reports_machine_and_cached_weights(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for word in ("torch", "cpus", "ram", "network", "weights efficientnet_lite0", "bundled", "weights resnet18"):
        assert word in out


@pytest.mark.timeout(120)
def test_help_and_doctor_do_not_import_torch():
    code = ("import sys, contextlib, io\nfrom medkit.cli import main\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()): main(['--help'])\n"
            "help_torch = 'torch' in sys.modules\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['doctor', '--json'])\n"
            "print(help_torch, 'torch' in sys.modules)")
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


@pytest.mark.timeout(120)
def test_doctor_reports_a_broken_torch(tmp_path):
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('libtorch_cpu.so: cannot open shared object file')\n")
    proc = _python("from medkit.cli import main; raise SystemExit(main(['doctor', '--json']))",
                   env={"PYTHONPATH": f"{tmp_path / 'fake'}{os.pathsep}{ROOT}"})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["rows"]["device"] == "unknown: torch does not import" and not report["ok"]
    (warning,) = [w for w in report["warnings"] if "torch" in w]
    assert "libtorch_cpu.so" in warning and "download.pytorch.org/whl/cpu" in warning


def test_doctor_json_is_only_json(capsys):
    assert main(["doctor", "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)  # one document, nothing else
    assert report["rows"]["weights efficientnet_lite0"].startswith("bundled") and "warnings" in report


def test_doctor_says_when_the_cache_is_not_writable(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MEDKIT_CACHE", str(blocker / "cache"))
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "NOT WRITABLE" in report["rows"]["cache"]
    assert any("MEDKIT_CACHE" in w and "not writable" in w for w in report["warnings"])


def test_fetch_offline_fails_clearly(tmp_cache, capsys):
    assert main(["fetch", "--weights", "resnet18"]) == 1
    captured = capsys.readouterr()
    assert "medkit fetch: error:" in captured.err and "medkit fetch --weights resnet18" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_fetch_offline_json_error_object(tmp_cache, capsys):
    assert main(["fetch", "--weights", "resnet18", "--json"]) == 1
    error = json.loads(capsys.readouterr().out)
    assert error["type"] == "OfflineError" and "medkit fetch --weights resnet18" in error["error"]


def test_fetch_bundled_weights_work_offline(tmp_cache, capsys):
    assert main(["fetch", "--weights", "efficientnet_lite0"]) == 0
    assert "weights efficientnet_lite0:" in capsys.readouterr().out
    assert main(["fetch", "--weights", "efficientnet_lite0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["weights"]["efficientnet_lite0"].endswith(".pth")


def test_fetch_unknown_names(tmp_cache, capsys):
    assert main(["fetch", "--data", "imagenet"]) == 1
    assert "Known datasets" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["course", "--profile", "huge"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["course", "--profile", "huge", "--json"])
    assert exc.value.code == 2
    assert json.loads(capsys.readouterr().out)["type"] == "UsageError"
    assert main([]) == 2


def test_json_mode_sends_stray_prints_to_stderr(capsys, monkeypatch):
    from medkit.cli import student

    def chatty(args):
        print("a log line from somewhere")
        return 0

    monkeypatch.setattr(student, "run", chatty)
    assert main(["student", "--out", "x", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"command": "student", "exit_code": 0}
    assert "a log line from somewhere" in captured.err


@pytest.mark.timeout(60)
def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "medkit.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("doctor", "fetch", "course", "--json"):
        assert command in out


@pytest.mark.parametrize("command", sorted(__import__("medkit.cli", fromlist=["_commands"])._commands()))
def test_every_command_help_renders(command, capsys):
    # argparse %-formats help strings: a stray "%" in any option's help breaks --help for everyone
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0 and command in capsys.readouterr().out


@pytest.mark.timeout(120)
def test_evaluate_help_lists_devices_without_importing_torch():
    code = ("import sys, contextlib, io\nfrom medkit.cli import main\nout = io.StringIO()\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(out): main(['evaluate', '--help'])\n"
            "print('torch' in sys.modules, '--internal-too' in out.getvalue(), 'cuda,mps' in out.getvalue())")
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True", "True"]


def test_cli_device_choices_are_the_train_modules():
    from medkit.cli import DEVICE_CHOICES
    from medkit.core.train import DEVICES

    assert DEVICE_CHOICES == DEVICES
