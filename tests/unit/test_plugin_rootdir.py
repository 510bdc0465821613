"""Pins what judge_eval.plugin.rootdir relies on in pytest's private configuration state."""

from __future__ import annotations

import inspect

import pytest

from judge_eval.plugin import rootdir

WHERE = "judge_eval/plugin/rootdir.py redoes pytest's rootdir decision with private names; re-check it"


def test_the_installed_pytest_is_the_one_the_module_was_written_for() -> None:
    assert pytest.__version__ == rootdir.PINNED_PYTEST, WHERE


def test_determine_setup_still_takes_the_arguments_we_pass() -> None:
    from _pytest.config.findpaths import determine_setup

    params = set(inspect.signature(determine_setup).parameters)
    assert {"inifile", "override_ini", "args", "rootdir_cmd_arg", "invocation_dir"} <= params, WHERE


def test_the_config_still_has_the_state_we_replace(pytestconfig: pytest.Config) -> None:
    for name in ("_rootpath", "_inipath", "_inicfg", "_ignored_config_files", "_inicache", "_parser",
                 "known_args_namespace"):
        assert hasattr(pytestconfig, name), f"pytest.Config has no {name}: {WHERE}"
    assert isinstance(pytestconfig._parser.extra_info, dict), WHERE
    # pytest still decides the rootdir before loading entry-point plugins (the reason for the module)
    source = inspect.getsource(pytest.Config.parse)
    assert source.index("determine_setup(") < source.index('load_setuptools_entrypoints("pytest11")'), WHERE


@pytest.mark.parametrize(("args", "expected"), [
    (["--study-dir", "/data/study"], True),
    (["--baseline-run", "old", "-q"], True),
    (["--study-dir=/data/study"], False),  # one argument: pytest never saw a separate path
    (["tests", "-q"], False),
    (["-q", "--study-dir"], False),  # no value after it
])
def test_which_command_lines_need_the_second_decision(args: list[str], expected: bool) -> None:
    assert rootdir.took_an_option_value_as_a_path(args) is expected
