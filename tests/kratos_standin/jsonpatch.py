"""The subset of RFC 6902 Kratos' identity PATCH accepts: add, remove and replace."""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """The patch is malformed, touches a denied path, or does not apply to the document."""


ALLOWED_OPS = frozenset({"add", "remove", "replace"})


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"invalid JSON pointer: {pointer!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _index(token: str, size: int, *, allow_end: bool) -> int:
    if allow_end and token == "-":
        return size
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"invalid array index: {token!r}")
    index = int(token)
    if index > size or (index == size and not allow_end):
        raise PatchError(f"array index out of bounds: {index}")
    return index


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(token, len(node), allow_end=False)]
        else:
            raise PatchError(f'doc is missing path: "{path}": missing value')
    if not isinstance(node, dict | list):
        raise PatchError(f'doc is missing path: "{path}": missing value')
    return node


def _apply_one(doc: Any, op: str, path: str, value: Any) -> Any:
    tokens = _tokens(path)
    if not tokens:
        if op == "remove":
            raise PatchError("cannot remove the whole document")
        return copy.deepcopy(value)
    parent, last = _parent(doc, tokens, path), tokens[-1]
    if isinstance(parent, dict):
        if op != "add" and last not in parent:
            raise PatchError(f'error in {op} for path: "{path}"')
        if op == "remove":
            del parent[last]
        else:
            parent[last] = copy.deepcopy(value)
        return doc
    index = _index(last, len(parent), allow_end=op == "add")
    if op == "add":
        parent.insert(index, copy.deepcopy(value))
    elif op == "remove":
        del parent[index]
    else:
        parent[index] = copy.deepcopy(value)
    return doc


def _denied(path: str, denied: tuple[str, ...]) -> bool:
    return any(path == d or path.startswith(d + "/") for d in denied)


def apply_patch(doc: Any, patch: object, *, denied: tuple[str, ...] = ()) -> Any:
    """Return a patched deep copy; the original is untouched if any operation fails."""
    if not isinstance(patch, list):
        raise PatchError("a JSON Patch document must be an array of operations")
    operations: list[tuple[str, str, Any]] = []
    for raw in patch:
        if not isinstance(raw, dict) or not isinstance(raw.get("path"), str):
            raise PatchError("every operation needs an op and a path")
        op = raw.get("op")
        if op not in ALLOWED_OPS:
            raise PatchError(f"unsupported operation: {op}")
        if op != "remove" and "value" not in raw:
            raise PatchError(f"{op} operation is missing a value")
        if _denied(raw["path"], denied):
            raise PatchError(f"patch includes denied path: {raw['path']}")
        operations.append((op, raw["path"], raw.get("value")))
    result = copy.deepcopy(doc)
    for op, path, value in operations:
        result = _apply_one(result, op, path, value)
    return result
