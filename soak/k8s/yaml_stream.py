"""Manifests as one multi-document YAML stream, as `kubectl apply -f -` reads it: block
style, keys in the order written, lists indented under their key, soak.toml as a literal
block, a schedule quoted, and a comment above each document saying where its figures came from."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # A cron schedule quoted, so that an edit to `*/5 ...` stays a string, not an alias.
    style = "|" if "\n" in data else '"' if "*" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _text)


def yaml_stream(documents: Iterable[tuple[list[str], dict[str, Any]]]) -> str:
    """`---`, the comment lines, the document; for each (comments, document)."""
    parts = []
    for comments, document in documents:
        text = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
        parts.append("---\n" + "".join(f"# {line}\n" for line in comments) + text)
    return "".join(parts)
