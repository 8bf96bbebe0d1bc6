#!/usr/bin/env python3
"""The values table of charts/troupe/README.md, from the comments of charts/troupe/values.yaml.

    chart-readme.py            rewrite the table between the README's markers
    chart-readme.py --check    fail (exit 1) when the README's table is not the one values.yaml gives

Every value must have a comment right above it (a missing one fails: every value is documented).
A key whose value is a block mapping is a section: its comment is a row of its own and its keys
follow, dotted. Flow values (`{…}`, `[…]`) and scalars are leaves; the default is shown as written.
No dependency beyond Python's standard library: values.yaml is written in this plain style.
"""
import re
import sys
from pathlib import Path

CHART = Path(__file__).resolve().parents[2] / "charts" / "troupe"
BEGIN, END = "<!-- values-table:begin -->", "<!-- values-table:end -->"
KEY = re.compile(r"^( *)([A-Za-z0-9_.-]+):(?: (.*))?$")


def escape(text):
    """Markdown for a table cell: pipes escaped, and <…> outside `code` shown, not taken for HTML."""
    parts = text.replace("|", "\\|").split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def rows(text):
    out, comment, stack = [], [], []  # stack: (indent, key) of open sections
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            comment = []
            continue
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
            continue
        m = KEY.match(line)
        if not m:
            sys.exit(f"values.yaml:{n}: not in the plain style this script reads: {line!r}")
        indent, key, value = len(m.group(1)), m.group(2), (m.group(3) or "").strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [key])
        if not comment:
            sys.exit(f"values.yaml:{n}: `{path}` has no comment: document every value")
        text_ = escape(" ".join(comment))
        if value:
            out.append((path, f"`{value}`", text_))
        else:
            out.append((path, "", text_))
            stack.append((indent, key))
        comment = []
    return out


def table(values_text):
    lines = ["| Value | Default | Meaning |", "| --- | --- | --- |"]
    for path, default, meaning in rows(values_text):
        name = f"`{path}`" if default else f"**`{path}`**"
        lines.append(f"| {name} | {default} | {meaning} |")
    return "\n".join(lines)


def main():
    readme = CHART / "README.md"
    current = readme.read_text()
    if BEGIN not in current or END not in current:
        sys.exit(f"{readme}: no {BEGIN} … {END} markers")
    head, rest = current.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    wanted = f"{head}{BEGIN}\n{table((CHART / 'values.yaml').read_text())}\n{END}{tail}"
    if "--check" in sys.argv[1:]:
        if wanted != current:
            sys.exit(f"{readme.relative_to(CHART.parents[1])}: the values table is out of date: run `make manifests` and commit it")
        return
    if wanted != current:
        readme.write_text(wanted)
        print(f"wrote {readme.relative_to(CHART.parents[1])}")


if __name__ == "__main__":
    main()
