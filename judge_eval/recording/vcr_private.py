"""The one module that touches vcrpy's private API (vcrpy 9.4.2, pinned in pyproject.toml and
constraints.txt). Everything else goes through vcrpy's public API (``Cassette.filter_request``,
``.data``, ``.responses``, ``.record_mode``, ``.find_requests_with_most_matches``, and
``CannotOverwriteExistingCassetteException.failed_request`` / ``.similar_requests``).

vcrpy 9.4.2 has no public way to do these things we need:

- ``Cassette._responses(request)``: the generator of ``(position, response)`` pairs matching a
  request, used by ``play_response``, ``responses_of`` and ``__contains__`` (hence
  ``can_play_response_for``). It runs every matcher on every recorded interaction for each
  request: quadratic in the cassette's size (12 ms per request at 100 interactions, 212 ms at
  3,000). ``install_index`` replaces it on the instance with a lookup in an index built once
  (replay only: the recorded interactions never change), and ``disable_playback_scan``
  replaces it with an empty generator while re-recording (mode ``all`` never plays back, but
  ``can_play_response_for`` tests ``request in cassette`` before it looks at the record mode).
  ``install_index`` also wraps the public ``play_response`` on the instance to note which
  position each played response came from (vcrpy returns only the response): a response the
  client then cannot parse is reported with its place in the cassette file.
- ``Cassette._save(force=True)``: the cassette's own save routine (scrub hooks, metadata, the
  mode ``all`` rules). vcrpy saves only when the ``use_cassette`` block exits; ``save_now``
  writes the cassette mid-recording, so an interrupted recording keeps every call it paid for.
- Playback observed: vcrpy has no hook on a played response. ``on_play`` wraps the public
  ``play_response`` on the instance (as ``install_index`` does) and hands each played response,
  the recorded dict itself, to a callback: a recording that extends a cassette (mode
  ``new_episodes``) notes there which item a replayed call belonged to, for the canonical order.

If an upgrade renames or reshapes one of these, tests/unit/test_vcr_private.py fails and says
which; fix this module (and only this module) then.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, Iterator

from judge_eval.errors import JudgeEvalError

#: The vcrpy release these private attributes were checked against.
VCRPY_VERSION = "9.4.2"
#: The private attributes of ``vcr.cassette.Cassette`` this module uses.
PRIVATE_ATTRIBUTES = ("_responses", "_save")


def _require(cass: Any, name: str) -> None:
    if not callable(getattr(type(cass), name, None)):
        import vcr

        raise JudgeEvalError(
            f"vcrpy {getattr(vcr, '__version__', '?')} has no Cassette.{name}, which "
            f"judge_eval/recording/vcr_private.py relies on (checked against vcrpy {VCRPY_VERSION}); "
            "update vcr_private.py for this vcrpy or install the pinned one")


def install_index(cass: Any, positions: Callable[[Any], Iterable[int]]) -> list[int]:
    """Make ``cass`` find a request's recorded responses through ``positions(request)`` (the
    positions in ``cass.data`` that match it, in recording order) instead of scanning them all.

    ``positions`` gets the request as the HTTP stub built it (not yet filtered: apply
    ``cass.filter_request`` as vcrpy's own scan does); it may return nothing.

    Returns the list of positions played back, in the order they were played (it grows as the
    cassette replays). ``play_response`` takes the first position ``_responses`` yields that has
    not been played yet and stops there, so the last position the generator yielded during a
    ``play_response`` call (per thread) is the one it played."""
    _require(cass, "_responses")
    _require(cass, "play_response")
    data = cass.data
    served: list[int] = []
    current = threading.local()

    def responses(request: Any) -> Iterator[tuple[int, Any]]:
        for n in positions(request):
            current.position = n
            yield n, data[n][1]

    play = cass.play_response

    def play_response(request: Any) -> Any:
        current.position = None
        response = play(request)  # raises when nothing is left to play: nothing was served
        if current.position is not None:
            served.append(current.position)
        return response

    cass._responses = responses  # an instance attribute shadows the method
    cass.play_response = play_response
    return served


def on_play(cass: Any, callback: Callable[[Any], Any]) -> None:
    """Call ``callback(response)`` with every response ``cass`` plays back: the recorded
    response dict itself (``cass.data[n][1]``), before the HTTP stub builds its response from it."""
    _require(cass, "play_response")
    play = cass.play_response

    def play_response(request: Any) -> Any:
        response = play(request)
        callback(response)
        return response

    cass.play_response = play_response


def disable_playback_scan(cass: Any) -> None:
    """While re-recording (mode ``all``) nothing is played back: skip vcrpy's scan of every
    interaction recorded so far before each request."""
    if getattr(cass.record_mode, "value", cass.record_mode) != "all":
        raise ValueError(f"disable_playback_scan is for record mode 'all', not {cass.record_mode!r}")
    _require(cass, "_responses")
    cass._responses = lambda request: iter(())


def save_now(cass: Any) -> None:
    """Write ``cass`` to its file as it is now, as vcrpy does when the cassette's block exits.

    vcrpy's serializer decodes every response body to ``str`` in place (``convert_to_unicode``
    on the recorded dicts themselves); vcrpy saves only at the end, but after a save mid-recording
    a response played back later (a resumed recording, mode ``new_episodes``) would reach httpx
    as ``str`` and fail to read. The bodies are turned back into bytes, as vcrpy loads them."""
    from vcr.serializers.compat import convert_to_bytes

    _require(cass, "_save")
    cass._save(force=True)
    for _, response in cass.data:
        convert_to_bytes(response)
