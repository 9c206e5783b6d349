"""OpenCost's v2 filter language, the subset that maps onto equality: ``namespace:"a","b"+label[team]:"x"``.

Grammar (whitespace between tokens is ignored)::

    filter    := condition ("+" condition)*
    condition := field (":" | "!:") value ("," value)*
    field     := name | name "[" key "]"
    value     := '"' characters, with \\" and \\\\ escaped '"'

``:`` keeps rows whose field is one of the values, ``!:`` rows whose field is none of them; ``+`` is AND.
OpenCost's ``|`` (OR), parentheses and its other operators (``~:`` contains, ``<~:`` prefix, ``>~:`` suffix and
their negations) are refused with a message naming what was given, never guessed at: a filter that silently
matched more than asked would be worse than an error. The parsed conditions become parameters of the query;
no value is ever pasted into SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...analysis.costs import DimensionError


class FilterError(DimensionError):
    """A filter that cannot be parsed or uses what is not supported; answered 400 with this message."""


@dataclass(frozen=True)
class Condition:
    """``field[key] (: | !:) values``: the row's field is (negate: is not) one of ``values``."""

    field: str
    key: str | None
    negate: bool
    values: tuple[str, ...]


_UNSUPPORTED_OPS = ("!~:", "<~:", ">~:", "~:", "!<~:", "!>~:")


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text, self.i = text, 0

    def skip(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def peek(self, s: str) -> bool:
        self.skip()
        return self.text.startswith(s, self.i)

    def done(self) -> bool:
        self.skip()
        return self.i >= len(self.text)

    def where(self) -> str:
        return f"at character {self.i + 1} of the filter"

    def name(self) -> str:
        self.skip()
        start = self.i
        while self.i < len(self.text) and (self.text[self.i].isalnum() or self.text[self.i] in "_-."):
            self.i += 1
        if start == self.i:
            found = self.text[self.i] if self.i < len(self.text) else "the end"
            raise FilterError(f"filter: expected a field name {self.where()}, found {found!r}")
        return self.text[start:self.i]

    def key(self) -> str:
        """``[key]`` after a field; a key is anything but ``]``."""
        self.i += 1  # the [
        end = self.text.find("]", self.i)
        if end < 0 or end == self.i:
            raise FilterError(f"filter: a field[key] needs a key and a closing ] {self.where()}")
        key, self.i = self.text[self.i:end], end + 1
        return key

    def string(self) -> str:
        self.skip()
        if not self.peek('"'):
            raise FilterError(f'filter: expected a "quoted" value {self.where()} (values are double-quoted, '
                              'e.g. namespace:"team-a")')
        self.i += 1
        out = []
        while self.i < len(self.text):
            ch = self.text[self.i]
            if ch == "\\" and self.i + 1 < len(self.text):
                out.append(self.text[self.i + 1])
                self.i += 2
                continue
            if ch == '"':
                self.i += 1
                return "".join(out)
            out.append(ch)
            self.i += 1
        raise FilterError("filter: a quoted value is not closed")


def parse_filter(text: str, fields: dict[str, str]) -> list[Condition]:
    """The conditions of ``text`` (empty: none). ``fields`` names the fields that may be used (name -> what it
    means, for the error message); ``label`` and ``annotation`` fields take a ``[key]``."""
    s = _Scanner(text)
    out: list[Condition] = []
    if s.done():
        return out
    while True:
        if s.peek("("):
            raise FilterError("filter: parentheses are not supported (only conditions joined by +)")
        field = s.name()
        key = s.key() if s.peek("[") else None
        if field not in fields:
            raise FilterError(f"filter: unknown field {field!r}: use {', '.join(fields)}")
        if fields[field].endswith("[KEY]") and key is None:
            raise FilterError(f"filter: {field} needs a key, e.g. {field}[team]:\"x\"")
        if key is not None and not fields[field].endswith("[KEY]"):
            raise FilterError(f"filter: {field} takes no [key]")
        for op in _UNSUPPORTED_OPS:
            if s.peek(op):
                raise FilterError(f"filter: the operator {op!r} is not supported: use : (is one of) or !: "
                                  "(is none of)")
        if s.peek("!:"):
            negate, s.i = True, s.i + 2
        elif s.peek(":"):
            negate, s.i = False, s.i + 1
        else:
            raise FilterError(f"filter: expected : or !: after {field} {s.where()}")
        values = [s.string()]
        while s.peek(","):
            s.i += 1
            values.append(s.string())
        out.append(Condition(field, key, negate, tuple(values)))
        if s.done():
            return out
        if s.peek("|"):
            raise FilterError("filter: | (or) is not supported: join conditions with + (and), or list the values "
                              'of one field: namespace:"a","b"')
        if not s.peek("+"):
            raise FilterError(f"filter: expected + between conditions {s.where()}, found "
                              f"{s.text[s.i:s.i + 10]!r}")
        s.i += 1
