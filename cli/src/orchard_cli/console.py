"""Terminal output: children's log lines prefixed with their name, colored on a terminal."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.text import Text

__all__ = ["PrefixedLog"]

_COLORS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan")


class PrefixedLog:
    """A :class:`~orchard_cli.supervisor.LineSink` that prints ``name | line``.

    Names are padded to the longest known one so the bars line up. Rich adds colors only when
    the console is a terminal, so redirected output stays plain text. Each line is written and
    flushed on its own (rich's console is thread-safe), and never wrapped.
    """

    def __init__(self, console: Console, names: Iterable[str] = ()) -> None:
        self._console = console
        self._styles: dict[str, str] = {}
        self._width = 0
        for name in names:
            self._register(name)

    def _register(self, name: str) -> str:
        style = self._styles.get(name)
        if style is None:
            style = _COLORS[len(self._styles) % len(_COLORS)]
            self._styles[name] = style
            self._width = max(self._width, len(name))
        return style

    def __call__(self, name: str, line: str, /) -> None:
        """Print one line of ``name``'s output."""
        style = self._register(name)
        text = Text.assemble((f"{name:<{self._width}} |", style), " ", line)
        self._console.print(text, soft_wrap=True, highlight=False, markup=False, emoji=False)
