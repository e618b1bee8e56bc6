"""Exceptions that carry a one-line, user-facing message.

Every error a user can cause (a missing file, a bad option, unusable weights) is a
``StylistError``; the CLI prints its message on one line and exits with status 2.
"""

from __future__ import annotations

from collections.abc import Sized


class StylistError(Exception):
    """A problem the user can fix; ``str(err)`` is one line saying what and how."""


class ImageError(StylistError):
    """An input image cannot be read, or an output cannot be written."""


class WeightsError(StylistError):
    """A weight source is unknown, unreachable, corrupt or of the wrong shape."""


class ConfigError(StylistError):
    """An option has a value Stylist cannot use."""


class NonFiniteLossError(StylistError):
    """The loss became NaN or infinite during optimisation."""


def first_line(err: BaseException, limit: int = 160) -> str:
    """The first line of another library's error, for a one-line message: whole words only (a
    longer line ends at the last word that fits, then "..."), or the error's type name if it has
    no text."""
    text = str(err).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    if len(line) <= limit:
        return line
    cut = line[:limit].rsplit(" ", 1)[0].rstrip(" ,;:(")
    return f"{cut} ..."


def count(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless n is 1: "1 value", "2 style images"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def check_one_each(flag: str, values: Sized, items: int, item: str) -> None:
    """ConfigError (one line) unless ``values`` (a sized option value) has one value per ``item``
    (singular noun), for options such as --style-weights, which give one number per painting."""
    n = len(values)
    if n != items:
        raise ConfigError(f"{flag} has {count(n, 'value')} for {count(items, item)}: give one per {item}")


class StylistWarning(UserWarning):
    """Something the user should know but that does not stop the run (the CLI prints it on one line)."""
