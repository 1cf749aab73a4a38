"""What every medkit command shares: a --help free of heavy imports, --json / --quiet anywhere, progress that
suits where it is written, `python -m medkit` and shell completion."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medkit.base import progress
from medkit.cli import _commands, log, main

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = sorted(_commands())
# each takes 0.3 s or more to import on 2 cores (torch 7-9 s, scikit-learn 3-8 s): none belongs in a --help
HEAVY = ("torch", "sklearn", "scipy", "pandas", "matplotlib")


def _python(*args: str, env=None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.timeout(120)
def test_no_command_help_imports_a_heavy_library():
    # one interpreter for all commands: a heavy module is blamed on the first command whose --help loaded it
    code = ("import sys, contextlib, io\nfrom medkit.cli import main\n"
            f"heavy, seen = {HEAVY!r}, set()\n"
            f"for name in {['', *COMMANDS]!r}:\n"
            "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "        main([name, '--help'] if name else ['--help'])\n"
            "    new = [h for h in heavy if h in sys.modules and h not in seen]\n"
            "    seen.update(new)\n"
            "    print(name or '(medkit)', ','.join(new) or '-')\n")
    proc = _python("-c", code)
    assert proc.returncode == 0, proc.stderr
    loaded = dict(line.split() for line in proc.stdout.splitlines())
    assert set(loaded) == {"(medkit)", *COMMANDS}
    assert {name: mods for name, mods in loaded.items() if mods != "-"} == {}


def test_fit_help_shows_the_recipe_defaults(capsys):
    from medkit.fit import RecipeConfig

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in (f"default {RecipeConfig.backbone}", f"default {RecipeConfig.image_size}",
                 f"default {RecipeConfig.epochs}", f"default {RecipeConfig.contrast}"):
        assert text in out


def test_torch_free_copies_match_their_sources():
    from medkit.cli.adapt import METHODS as CLI_METHODS
    from medkit.cli.compare import DEFAULT_MARGIN as CLI_MARGIN
    from medkit.data.contrast import DEFAULT_CONTRAST
    from medkit.evaluation.adapt import METHODS
    from medkit.evaluation.compare import DEFAULT_MARGIN
    from medkit.fit import RecipeConfig

    assert CLI_METHODS == METHODS
    assert RecipeConfig.contrast == DEFAULT_CONTRAST
    assert CLI_MARGIN == DEFAULT_MARGIN


@pytest.mark.parametrize("before, after", [(["--json"], []), ([], ["--json"]), (["-q", "--json"], []),
                                           ([], ["--quiet", "--json"])])
def test_json_and_quiet_go_before_or_after_the_command(before, after, capsys):
    lesson = str(ROOT / "notebooks" / "00_start_here.ipynb")  # committed clean: nothing to change
    assert main([*before, "clean", "--check", lesson, *after]) == 0
    assert json.loads(capsys.readouterr().out) == {"check": True, "dirty": []}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_quiet_on_either_side(command):
    from medkit.cli import build_parser

    parser = build_parser(only=command)
    required = {"adapt": ["--checkpoint", "c", "--data", "d", "--out", "o"], "audit": ["d"],
                "completion": ["bash"], "evaluate": ["--checkpoint", "c", "--data", "d"],
                "export": ["--checkpoint", "c", "--out", "o"], "fit": ["--data", "d", "--out", "o"],
                "predict": ["--model", "m", "i"], "student": ["--out", "o"],
                "compare": ["--current", "a", "--candidate", "b", "--data", "d"], "serve": ["--model", "m", "--out", "o"]}.get(command, [])
    assert parser.parse_args([command, *required, "--quiet"]).quiet
    assert parser.parse_args(["--quiet", command, *required]).quiet
    assert not parser.parse_args([command, *required]).quiet


def test_quiet_silences_log_and_bars_for_the_command_only(capsys, monkeypatch):
    from medkit.cli import student

    seen = {}

    def chatty(args):
        log("a progress line")
        seen["tqdm_disable"] = os.environ.get("TQDM_DISABLE")
        print("the result")
        return 0

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setattr(student, "run", chatty)
    assert main(["--quiet", "student", "--out", "x"]) == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err, seen["tqdm_disable"]) == ("the result\n", "", "1")
    assert "TQDM_DISABLE" not in os.environ  # restored after the command
    assert main(["student", "--out", "x"]) == 0
    assert capsys.readouterr().err == "a progress line\n"


def test_progress_prints_plain_lines_off_a_terminal(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not progress.draws_bars()
    items = progress.progress(range(3), "caching", every=0)
    assert len(items) == 3 and list(items) == [0, 1, 2]
    lines = sys.stderr.getvalue().splitlines()
    assert lines[0].startswith("caching: 1/3 (33%), ") and lines[-1].startswith("caching: 3/3 (100%), ")
    assert "\r" not in sys.stderr.getvalue()


def test_progress_draws_a_bar_on_a_terminal_and_nothing_when_disabled(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setattr(sys, "stderr", Terminal())
    from tqdm.std import tqdm

    assert isinstance(progress.progress(range(3), "x"), tqdm)
    assert progress.progress(range(3), "x", enabled=False) == range(3)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress.progress(range(3), "x") == range(3)


@pytest.mark.timeout(60)
def test_python_dash_m_medkit_runs_the_command():
    from medkit import __version__

    proc = _python("-m", "medkit", "--version")
    assert (proc.returncode, proc.stdout.strip()) == (0, f"medkit {__version__}"), proc.stderr
    proc = _python("-m", "medkit", "--json", "no-such-command")
    assert proc.returncode == 2 and json.loads(proc.stdout)["type"] == "UsageError"


@pytest.mark.timeout(60)
def test_completion_script_and_answers(tmp_path):
    pytest.importorskip("argcomplete")
    proc = _python("-m", "medkit", "completion", "bash")
    assert proc.returncode == 0 and "complete" in proc.stdout and "medkit" in proc.stdout, proc.stderr
    answers = tmp_path / "answers"
    line = "medkit fit --epo"  # what the shell hands over when the user presses tab
    proc = _python("-m", "medkit", env={"_ARGCOMPLETE": "1", "_ARGCOMPLETE_SHELL": "bash", "COMP_LINE": line,
                                        "COMP_POINT": str(len(line)), "_ARGCOMPLETE_STDOUT_FILENAME": str(answers)})
    assert proc.returncode == 0, proc.stderr
    assert answers.read_text().split() == ["--epochs"]
