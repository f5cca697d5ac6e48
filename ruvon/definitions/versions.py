"""Versions of one workflow type side by side: how they are ordered, which one a start gets.

A registry may list one workflow type several times, each entry's workflow file declaring its
own ``workflow_version``. Those versions are ordered as semantic versions (semver 2.0
precedence, relaxed so that ``2`` and ``2.1`` are versions too):

- an optional leading ``v``, then any number of dot-separated numbers, compared numerically
  (``1.10.0`` > ``1.9.0``); missing trailing numbers count as 0, so ``2.0`` is ``2.0.0``;
- an optional pre-release after ``-`` sorts before its release (``2.0.0-rc.1`` < ``2.0.0``);
  its dot-separated identifiers compare numerically when numeric, as text otherwise, and a
  numeric one sorts before a textual one;
- build metadata after ``+`` is ignored, as semver says.

Two versions of one type with the same precedence (``2.0`` and ``2.0.0``) would make "the
latest" ambiguous, so the loader refuses them; so it does a version that is not of this form,
or a missing one, when the type has several versions. A start without a version gets the
latest; a workflow in flight keeps the version (the snapshot) it started with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_VERSION = re.compile(
    r"^v?(?P<release>\d+(?:\.\d+)*)(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)

#: One identifier of a pre-release: (0, number, "") for numeric ones, (1, 0, text) otherwise.
_Identifier = tuple[int, int, str]
VersionKey = tuple[tuple[int, ...], tuple[int, tuple[_Identifier, ...]]]


def version_key(version: str) -> VersionKey | None:
    """The sort key of ``version``, or None when it is not a semantic version."""
    match = _VERSION.match(version.strip())
    if match is None:
        return None
    release = [int(part) for part in match["release"].split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    pre = match["pre"]
    if pre is None:
        return (tuple(release), (1, ()))  # a release sorts after each of its pre-releases
    identifiers = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in pre.split(".")
    )
    return (tuple(release), (0, identifiers))


def latest_version(versions: Iterable[str]) -> str:
    """The highest of ``versions`` (each must be a semantic version)."""
    return max(versions, key=_required_key)


def ordered_versions(versions: Iterable[str]) -> list[str]:
    """``versions`` oldest first (each must be a semantic version)."""
    return sorted(versions, key=_required_key)


def _required_key(version: str) -> VersionKey:
    key = version_key(version)
    if key is None:
        raise ValueError(f"'{version}' is not a semantic version")
    return key
