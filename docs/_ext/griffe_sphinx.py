"""Griffe extension: render the package's Sphinx-flavoured docstrings as mkdocstrings Markdown.

The docstrings are Google style with a few reStructuredText habits. This extension, loaded by
mkdocstrings (``mkdocs.yml``) and by ``tests/test_docs.py``, turns them into what
mkdocstrings renders:

* ``:class:`Name``` and the other Sphinx roles become cross-references
  (``[`Name`][streamdiarize.module.Name]``), resolved in the docstring's own scope the way
  Sphinx does (``~`` shows the last component only, a leading ``.`` searches upwards). A name
  that resolves to nothing is reported as a warning, which fails ``mkdocs build --strict``;
  private targets (a ``_name``) and objects outside the package are shown as code, unlinked.
* ``#:`` comments on or above an assignment become the attribute's docstring (Sphinx's
  autodoc convention, used for constants and enum members).
* A paragraph ending in ``::`` loses one colon (the indented block after it is already code
  in Markdown), and reStructuredText simple tables (``=== ===`` borders) become text blocks.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import griffe

__all__ = ["SphinxDocstrings"]

logger = griffe.logger

_ROLE = re.compile(r":(?:py:)?(class|func|meth|attr|data|mod|exc|obj|const|type):`([^`]+)`")
_TITLED = re.compile(r"^(.*?)\s*<([^>]+)>$")
_TABLE_BORDER = re.compile(r"^\s*=+(?: +=+)+\s*$")
_LITERAL_INTRO = re.compile(r"::$")


class SphinxDocstrings(griffe.Extension):
    """Rewrites every docstring of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Runs once the whole package is loaded, so every name can be resolved."""
        objects = list(_walk(pkg))
        for obj in objects:  # first, so that references below see these docstrings
            if obj.docstring is None and obj.is_attribute:
                _docstring_from_comments(obj)
        for obj in objects:
            if obj.docstring is not None:
                text = _tables_to_text(obj.docstring.value)
                text = _literal_intros(text)
                obj.docstring.value = _ROLE.sub(functools.partial(_reference, obj), text)


def _walk(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in list(obj.members.values()):
        if not member.is_alias:
            yield from _walk(member)  # type: ignore[arg-type]


def _docstring_from_comments(attr: griffe.Object) -> None:
    """``NAME = value  #: text`` or ``#: text`` lines right above ``NAME = value``."""
    filepath = attr.filepath
    if attr.lineno is None or not isinstance(filepath, Path):
        return
    if filepath not in attr.lines_collection:
        return
    lines = attr.lines_collection[filepath]
    index = attr.lineno - 1
    _, hashes, trailing = lines[index].partition("#: ")
    parts = [trailing.strip()] if hashes else []
    above = index - 1
    while not parts and above >= 0 and lines[above].strip().startswith("#:"):
        above -= 1
    if not parts:
        parts = [line.strip()[2:].strip() for line in lines[above + 1 : index]]
    if any(parts):
        attr.docstring = griffe.Docstring(
            "\n".join(parts), lineno=attr.lineno, endlineno=attr.lineno, parent=attr
        )


def _tables_to_text(text: str) -> str:
    """Fence reStructuredText simple tables (three ``=`` border lines) as plain text."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        borders = [i] if _TABLE_BORDER.match(lines[i]) else []
        j = i + 1
        while borders and j < len(lines) and len(borders) < 3:
            if _TABLE_BORDER.match(lines[j]):
                borders.append(j)
            j += 1
        if len(borders) == 3:
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            out += ["", f"{indent}```text", *lines[i : borders[2] + 1], f"{indent}```", ""]
            i = borders[2] + 1
        else:
            out.append(lines[i])
            i += 1
    return "\n".join(out)


def _literal_intros(text: str) -> str:
    """``Example::`` becomes ``Example:``; a lone ``::`` line disappears."""
    lines = []
    for line in text.split("\n"):
        if line.strip() == "::":
            continue
        lines.append(_LITERAL_INTRO.sub(":", line) if line.endswith("::") else line)
    return "\n".join(lines)


def _reference(obj: griffe.Object, match: re.Match[str]) -> str:
    """The Markdown for one role: a cross-reference, or code when it cannot be linked."""
    role, body = match.group(1), match.group(2).strip()
    titled = _TITLED.match(body)
    title, target = (titled.group(1), titled.group(2)) if titled else (None, body)
    short = target.startswith("~")
    target = target.lstrip("~")
    shown = title or (target.lstrip(".").rsplit(".", 1)[-1] if short else target.lstrip("."))
    if role in ("func", "meth") and not title:
        shown += "()"
    path = _resolve(obj, target, module=role == "mod")
    if path is None:
        logger.warning(
            "%s: docstring reference %s does not resolve to any object", obj.path, match.group(0)
        )
        return f"`{shown}`"
    if not path.startswith(obj.package.name + ".") and path != obj.package.name:
        return f"`{shown}`"  # outside the package: nothing to link to
    if any(part.startswith("_") and not part.startswith("__") for part in path.split(".")[-1:]):
        return f"`{shown}`"  # a private helper: named, not documented
    return f"[`{shown}`][{path}]"


def _resolve(obj: griffe.Object, target: str, *, module: bool) -> str | None:
    """The canonical path ``target`` names when written in ``obj``'s docstring."""
    collection = obj.modules_collection
    relative = target.startswith(".")
    name = target.lstrip(".")
    candidates: list[str] = []
    if module or "." in name:
        candidates.append(name)  # an absolute path
    head, _, rest = name.partition(".")
    try:
        resolved = obj.resolve(head)
    except griffe.NameResolutionError:
        resolved = None
    if resolved is not None:
        candidates.append(f"{resolved}.{rest}" if rest else resolved)
    if relative or resolved is None:  # Sphinx: search the enclosing module and package
        scope: griffe.Object | None = obj.module
        while scope is not None:
            candidates.append(f"{scope.path}.{name}")
            scope = scope.parent
    for candidate in candidates:
        try:
            found = collection.get_member(candidate)
        except (KeyError, ValueError, griffe.AliasResolutionError):
            continue
        if found is None:
            continue
        try:
            named = found.final_target if found.is_alias else found
        except griffe.AliasResolutionError:
            return str(found.path)
        if named.is_attribute and named.docstring is None and named.parent is not None:
            named = named.parent  # documented in its class's Attributes section
        return str(named.canonical_path)
    return None
