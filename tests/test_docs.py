"""The commands the README and the docs show run as written: every code block parses, and every
option, profile and --set name a documented command uses is one its command line takes."""

import argparse
import ast
import itertools
import re
import runpy
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from helpers.core import paths
from helpers.core.errors import ConfigError
from helpers.models import registry
from helpers.run import profiles, runner

DOCS = [
    paths.REPO_ROOT / "README.md",
    paths.REPO_ROOT / "data" / "README.md",
    *sorted((paths.REPO_ROOT / "docs").glob("*.md")),
    paths.REPO_ROOT / "benchmarks" / "RESULTS.md",
]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
# Each documented program and the module whose command line it is.
PROGRAMS = {
    "./run_all.sh": "helpers.run.runner",
    "helpers.predict": "helpers.predict",
    "helpers.seeds": "helpers.seeds",
    "helpers.folds": "helpers.folds",
    "helpers.leaderboard": "helpers.leaderboard",
    "helpers.synthetic": "helpers.synthetic",
    "helpers.run.nbtools": "helpers.run.nbtools",
    "benchmarks": "benchmarks",
    "benchmarks.scale": "benchmarks.scale",
    "benchmarks.memory": "benchmarks.memory",
}


def _blocks(path: Path) -> list[tuple[str, str, int]]:
    """(language, body, line) of each fenced block."""
    text = path.read_text(encoding="utf-8")
    return [
        (m.group(1), m.group(2), text[: m.start()].count("\n") + 1) for m in BLOCK.finditer(text)
    ]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_code_block_parses(path):
    """A reader pastes these: a Python block must compile, a shell block must parse."""
    bad = []
    for lang, body, line in _blocks(path):
        if lang == "python":
            # Notebook shell lines (`!pip ...`) are IPython's, not Python's.
            lines = body.split("\n")
            code = "\n".join("" if s.lstrip().startswith(("!", "%")) else s for s in lines)
            try:
                ast.parse(code)
            except SyntaxError as e:
                bad.append(f"line {line + (e.lineno or 0)}: {e.msg}")
        elif lang in ("bash", "sh", "shell"):
            done = subprocess.run(["bash", "-n"], input=body, text=True, capture_output=True)
            if done.returncode:
                bad.append(f"line {line}: {done.stderr.strip()}")
    assert bad == []


def _commands(path: Path) -> list[tuple[str, list[str], str]]:
    """(program, its arguments, where) for each documented command: each line of a shell
    block (continuations joined, comments dropped) and each inline code span."""
    text = path.read_text(encoding="utf-8")
    found: list[tuple[str, str]] = []
    for lang, body, line in _blocks(path):
        if lang in ("bash", "sh", "shell"):
            joined = body.replace("\\\n", " ")
            found += [(s, f"{path.name}, block at line {line}") for s in joined.split("\n")]
    prose = BLOCK.sub("", text)
    found += [(m.group(1), f"{path.name}: `{m.group(1)}`") for m in INLINE.finditer(prose)]
    commands = []
    for source, where in found:
        try:
            words = shlex.split(source, comments=True)
        except ValueError:
            words = source.split()
        for i, word in enumerate(words):
            program = None
            if word.endswith("run_all.sh"):
                program = "./run_all.sh"
            elif word == "-m" and i + 1 < len(words):
                program = words[i + 1]
            if program in PROGRAMS:
                rest = words[i + 1 if word.endswith("run_all.sh") else i + 2 :]
                commands.append((program, rest, where))
    return commands


class _Parser(Exception):
    """Carries the parser a command line built, caught before it parses anything."""


def _parser(module: str, monkeypatch) -> argparse.ArgumentParser:
    """The argparse parser `python -m module` builds, without running the command."""

    def capture(self, *args, **kwargs):
        raise _Parser(self)

    with monkeypatch.context() as m:
        m.setattr(argparse.ArgumentParser, "parse_args", capture)
        m.setattr(argparse.ArgumentParser, "parse_known_args", capture)
        m.setattr(sys, "argv", [module])
        try:
            with warnings.catch_warnings():  # the module is already imported: runpy says so
                warnings.simplefilter("ignore", RuntimeWarning)
                runpy.run_module(module, run_name="__main__", alter_sys=False)
        except _Parser as caught:
            return caught.args[0]
        except SystemExit:
            pass
    raise AssertionError(f"python -m {module} built no argparse parser")


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return set(parser._option_string_actions)


def test_the_documents_show_every_program():
    """The extraction below finds the commands (so a test of none cannot pass by accident)."""
    shown = {program for path in DOCS for program, _, _ in _commands(path)}
    assert {"./run_all.sh", "helpers.predict", "helpers.seeds", "helpers.folds"} <= shown
    assert "benchmarks" in shown


def test_every_documented_option_exists(monkeypatch):
    """A flag the README shows and the command refuses is the first thing a reader meets."""
    options = {program: _options(_parser(m, monkeypatch)) for program, m in PROGRAMS.items()}
    bad = []
    for path in DOCS:
        for program, words, where in _commands(path):
            for word in words:
                flag = word.split("=", 1)[0]
                if re.fullmatch(r"--[a-z][a-z0-9-]*", flag) and flag not in options[program]:
                    bad.append(f"{where}: {program} has no {flag}")
    assert bad == []


def _run_all_problems(words: list[str], where: str, stages: list[runner.Stage]) -> list[str]:
    """What run_all.sh would refuse in one documented command before any work: an unknown
    profile or model, a --set name no notebook declares, a --set value its notebook refuses."""
    profile = dict(itertools.pairwise(words)).get("--profile", profiles.DEFAULT_PROFILE)
    bad = []
    for flag, value in itertools.pairwise(words):
        if "<" in value or "..." in value:  # a placeholder, not a value
            continue
        try:
            if flag == "--profile":
                profiles.get_profile(value)
            elif flag == "--models":
                profiles.parse_models(value)
            elif flag == "--set":
                setting = runner.parse_setting(value)
                runner.check_settings([setting], stages)
                runner.check_values(profile, stages, [setting], {}, set())
        except ConfigError as e:
            bad.append(f"{where}: {flag} {value}: {e}")
    return bad


def test_every_documented_profile_model_and_setting_exists():
    """`--profile X`, `--models a,b` and `--set NAME=VALUE` in the docs name what there is, and
    each documented --set value passes the check run_all.sh runs on it before any work."""
    stages = runner.plan_stages(registry.list_models())
    bad = []
    for path in DOCS:
        for program, words, where in _commands(path):
            if program == "./run_all.sh":
                bad += _run_all_problems(words, where, stages)
    assert bad == []


def test_a_documented_set_value_run_all_refuses_is_found():
    stages = runner.plan_stages(["custom_cnn"])
    for words, says in (
        (["--set", "tta=flipp"], "tta must be one of"),
        (["--profile", "smoke", "--set", "04:epochs=0"], "epochs must be an integer >= 1"),
        (["--set", "augment_mode=sometimes"], "augment_mode must be one of"),
    ):
        (problem,) = _run_all_problems(words, "README.md", stages)
        assert says in problem, words
    assert _run_all_problems(["--set", "04:weights=<run>/models/a.keras"], "", stages) == []


def test_the_readme_does_not_take_a_bootstrap_interval_for_a_retraining():
    """An interval resamples the test images; weights trained on another CPU, or in bfloat16
    rather than float32, can land outside it, so the README must not promise otherwise."""
    text = " ".join((paths.REPO_ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "differ within their intervals" not in text
    assert "A bootstrap interval covers drawing other test images, not training again" in text


def test_the_readme_states_the_speed_measure_as_it_is_taken():
    """One batch of the first test faces, padded, called TIMED_BATCHES times per pass, the
    median of TIMED_PASSES passes: the README's sentence names the same numbers."""
    from helpers.inference.speed import TIMED_BATCHES, TIMED_PASSES

    text = " ".join((paths.REPO_ROOT / "README.md").read_text(encoding="utf-8").split())
    start = text.index("Every inference speed (")
    sentence = text[start : text.index("(`measure` says so)", start)]
    assert "first batch of test faces (`batch_size`" in sentence and "zero-padded" in sentence
    assert f"called {TIMED_BATCHES} times per pass" in sentence
    assert f"median of {TIMED_PASSES} timed passes" in sentence


def _examples(parser: argparse.ArgumentParser, program: str) -> list[list[str]]:
    """The command lines a parser's --help epilog shows, less the program and any comment."""
    lines = (parser.epilog or "").partition("examples:\n")[2].splitlines()
    return [shlex.split(line.partition("#")[0])[len(program.split()) :] for line in lines]


def test_the_smoke_profile_says_how_long_it_takes_as_measured():
    """The first command a new user runs says how long it takes, in --help and the README alike,
    and the README's figure for a quiet machine is the smoke run benchmarks/RESULTS.md records."""
    example = next(line for line in runner.RUN_ALL_EXAMPLES.splitlines() if "smoke" in line)
    readme = (paths.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert example.strip() in readme.splitlines()
    assert "few minutes" not in example and " min on 2 cores" in example
    results = (paths.REPO_ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    smoke = results.split("**profile smoke")[1]
    total = re.search(r"\| total \(stages\) \| ok \| ([\d,]+) \|", smoke)
    assert total is not None
    assert f"stages took {total[1]} s with nothing else running" in " ".join(readme.split())


def test_help_ends_with_examples_that_parse(monkeypatch, capsys):
    """./run_all.sh --help and python -m helpers.predict --help end with examples, each one a
    command line their parsers take, so the examples cannot drift from the options."""
    from helpers.inference import cli

    with pytest.raises(SystemExit):
        runner.parse_args(["--help"])
    assert "examples:\n  ./run_all.sh --profile smoke" in capsys.readouterr().out
    run_all = _parser("helpers.run.runner", monkeypatch)
    predict = cli._parser()
    cases = [(run_all, "./run_all.sh"), (predict, "python -m helpers.predict")]
    for parser, program in cases:
        examples = _examples(parser, program)
        assert len(examples) >= 4, program
        for argv in examples:
            parser.parse_args(argv)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """A parser and each of its sub-commands' parsers, by the command line that shows them."""
    found = {parser.prog: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _subparsers(sub)
    return found


@pytest.mark.parametrize("module", ["helpers.run.runner", "benchmarks", "helpers.run.nbtools"])
def test_every_option_and_positional_has_help_that_states_its_default(module, monkeypatch):
    """--help (of every sub-command too) says what each option and positional is, and the
    default of each that takes a value, as the README promises for every command."""
    bad = []
    for prog, parser in _subparsers(_parser(module, monkeypatch)).items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            name = "/".join(action.option_strings) or action.dest
            text = formatter._get_help_string(action) or ""
            if not text:
                bad.append(f"{prog} {name}: no help")
            elif action.nargs != 0 and action.option_strings and "default" not in text:
                bad.append(f"{prog} {name}: no default in {text!r}")
    assert bad == []


def test_run_tests_help_is_its_own_usage_and_sets_nothing_up(tmp_path):
    """./run_tests.sh --help says what the script runs, its environment and how pytest
    arguments pass, before any setup (no virtual environment is made), not pytest's help."""
    env = {"PATH": "/usr/bin:/bin", "AFFECT_VENV": str(tmp_path / "venv")}
    script = paths.REPO_ROOT / "run_tests.sh"
    result = subprocess.run(
        ["bash", str(script), "--help"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("usage: ./run_tests.sh [PYTEST ARGUMENTS...]")
    for word in ("AFFECT_TEST_WORKERS", "AFFECT_TEST_EXTRAS", "nbval", "examples:"):
        assert word in text, word
    assert "[bootstrap]" not in text + result.stderr and "--nbval-lax" not in text
    # what the checks print when they pass: one line, as the usage and the README say
    passed = re.findall(r'^\s*echo "(\[checks\][^"]*)"$', script.read_text(), re.M)
    assert passed == ["[checks] ruff, import layers and types: ok"]
    readme = " ".join((paths.REPO_ROOT / "README.md").read_text(encoding="utf-8").split())
    for said in (" ".join(text.split()), readme):
        assert "checks (" in said and "one line when they pass" in said
        assert "silent unless one fails" not in said
    assert not (tmp_path / "venv").exists()


def test_the_readme_names_the_metrics_that_have_a_bootstrap_interval():
    """Only bootstrap.CI_KEYS get an interval: the README names them, never "every metric"."""
    from helpers.evaluation.bootstrap import CI_KEYS

    text = " ".join((paths.REPO_ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "every metric with bootstrap" not in text and "with 95% bootstrap CIs" not in text
    names = {"f1_macro": "macro-F1", "kappa": "Cohen's kappa"}
    listed = "accuracy, macro-F1, Cohen's kappa, CCC, RMSE and NME each with its 95% bootstrap CI"
    assert listed in text
    for key in (k for keys in CI_KEYS.values() for k in keys):
        assert names.get(key, key.upper() if key != "accuracy" else key) in listed, key
