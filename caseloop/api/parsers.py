"""The API's one request parser: strict JSON that never turns odd input into a server error."""

from __future__ import annotations

import codecs
import json
import math
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def unstorable(value: Any, path: str = "$") -> str | None:
    """Where ``value`` holds a string the database cannot store (NUL, lone surrogates), or None."""
    stack = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return f"{where}: strings may not contain NUL characters"
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return f"{where}: strings may not contain lone surrogate characters"
        elif isinstance(node, dict):
            for key, item in node.items():
                if problem := unstorable(key, f"{where} (a key)"):
                    return problem
                stack.append((item, f"{where}.{key}"))
        elif isinstance(node, list):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(node))
    return None


class StrictJSONParser(BaseParser):
    """JSON bodies. Refused with 400: NaN and Infinity, numbers out of float range, strings the
    database cannot store, and documents nested too deeply to parse."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
            data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        except RecursionError:
            raise ParseError("JSON parse error: the document is nested too deeply.") from None
        except (ValueError, UnicodeDecodeError, LookupError) as exc:
            raise ParseError(f"JSON parse error: {exc}") from None
        if problem := unstorable(data):
            raise ParseError(f"JSON parse error: {problem}.")
        return data
