"""The one-line message for a file the server cannot parse (spec, tokens, scenario, state
file): `FILE:LINE:COL: what is wrong`, as compilers and editors show it, whatever parser
(PyYAML, json, orjson) found the error."""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def syntax_error(path: Path, raw: bytes, error: Exception, first_line: int = 1) -> str:
    """`FILE:LINE:COL: what` for a YAML, JSON or UTF-8 error in `raw` (the text of `path`
    from its line `first_line` on); `FILE: what` when the parser gives no position."""
    found = _position(raw, error)
    what = _what(error).replace("\n", " ").strip() or type(error).__name__
    if found is None:
        return f"{path}: {what}"
    line, column = found
    return f"{path}:{line + first_line - 1}:{column}: {what}"


def _position(raw: bytes, error: Exception) -> tuple[int, int] | None:
    """Line and column, from 1."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        return error.problem_mark.line + 1, error.problem_mark.column + 1
    if isinstance(error, json.JSONDecodeError):  # orjson's is one too
        return error.lineno, error.colno
    if isinstance(error, UnicodeDecodeError):
        start = raw.find(error.object) if isinstance(error.object, bytes) else 0
        at = max(start, 0) + error.start
        line_start = raw.rfind(b"\n", 0, at) + 1
        return raw.count(b"\n", 0, at) + 1, at - line_start + 1
    return None


def _what(error: Exception) -> str:
    if isinstance(error, yaml.MarkedYAMLError):
        problem = error.problem or "not valid YAML"
        return f"{problem} ({error.context})" if error.context else problem
    if isinstance(error, json.JSONDecodeError):
        return error.msg
    if isinstance(error, UnicodeDecodeError):
        return f"not UTF-8 text: {error.reason}"
    return str(error)
