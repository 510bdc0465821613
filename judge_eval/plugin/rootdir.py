"""The one place that touches pytest's private configuration state (pytest 9.0.3).

pytest decides the rootdir and the ini file from the raw command line *before* it loads any
plugin, even one registered by an entry point (``_pytest/config/__init__.py``, ``Config.parse``
calls ``determine_setup`` with the positional arguments of a parse that knows only pytest's own
options). So in ``pytest --study-dir ~/data/study`` the folder looks like a test path to that
decision: pytest then takes ``~/data/study`` as the rootdir, finds no ini file there, and the
project's ``[tool.pytest.ini_options]`` (testpaths, addopts, markers, our ini keys) is lost.

Once the plugin's options are known, ``correct_setup`` makes that decision again with the
arguments as they really are, and, when it changes and pytest had found no ini file, installs the
right rootdir, ini file and ini ``addopts``. ``tests/unit/test_plugin_rootdir.py`` pins this against
the installed pytest and fails, naming this module, if the private names it uses change.
"""

from __future__ import annotations

import copy
from typing import Any

#: The plugin's options that take a path (the ones a user types with a space before the path).
PATH_OPTIONS = ("--study-dir", "--baseline-run", "--judge-report-md")
PINNED_PYTEST = "9.0.3"


def took_an_option_value_as_a_path(args: list[str]) -> bool:
    return any(arg in PATH_OPTIONS for arg in args[:-1])


def correct_setup(config: Any, args: list[str]) -> bool:
    """Redo pytest's rootdir/ini decision without our options' values; True when it changed."""
    if not took_an_option_value_as_a_path(args) or config.inipath is not None:
        return False
    from _pytest.config.findpaths import determine_setup

    ns = config.known_args_namespace  # parsed again after the entry points: knows our options
    rootpath, inipath, inicfg, ignored = determine_setup(
        inifile=ns.inifilename, override_ini=ns.override_ini, args=ns.file_or_dir,
        rootdir_cmd_arg=ns.rootdir or None, invocation_dir=config.invocation_params.dir)
    if inipath is None:
        return False
    config._rootpath, config._inipath, config._inicfg = rootpath, inipath, inicfg
    config._ignored_config_files = ignored
    config._parser.extra_info["rootdir"] = str(rootpath)
    config._parser.extra_info["inifile"] = str(inipath)
    config._inicache.clear()
    addopts = list(config.getini("addopts"))
    if addopts:
        config.pluginmanager.consider_preparse(addopts, exclude_only=False)
        args[:] = addopts + args
    config.known_args_namespace = config._parser.parse_known_args(args, namespace=copy.copy(config.option))
    config.known_args_namespace.confcutdir = str(inipath.parent)
    return True
