"""A pytest plugin for tests/unit/test_proxies.py's subprocess run: a socket audit hook that logs
every name lookup and connection the session makes (``-p tests.network_audit``), written as JSON
lines to $JUDGE_EVAL_AUDIT_LOG at the end. An audit hook cannot be removed, so it only ever runs
in that child process."""

from __future__ import annotations

import json
import os
import sys

EVENTS: list[dict] = []


def _hook(event: str, args: tuple) -> None:
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple):
            EVENTS.append({"event": "connect", "host": str(address[0]), "port": address[1],
                           "test": os.environ.get("PYTEST_CURRENT_TEST", "")})
    elif event == "socket.getaddrinfo":
        EVENTS.append({"event": "getaddrinfo", "host": None if args[0] is None else str(args[0]),
                       "port": args[1]})
    elif event in ("socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr"):
        EVENTS.append({"event": event.split(".")[1], "host": str(args[0]), "port": None})


sys.addaudithook(_hook)


def pytest_unconfigure(config) -> None:
    with open(os.environ["JUDGE_EVAL_AUDIT_LOG"], "w", encoding="utf-8") as fh:
        for event in EVENTS:
            fh.write(json.dumps(event) + "\n")
