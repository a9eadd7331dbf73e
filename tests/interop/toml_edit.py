#!/usr/bin/env python3
"""What a person does in an editor when a guide says "set these keys": `toml_edit.py FILE EDIT...`
sets every key of each EDIT (a TOML snippet of tables and one-line `key = value` pairs) in FILE,
in its table. A key already in the table, set or commented out (`# key = ...`), is replaced on
its line; a missing key goes after the table's last line; a missing table is added at the end.
Comments and the other keys stay. The result must parse and hold each edited value, else it
fails and FILE is left as it was. FILE is written in place, keeping its owner and mode.
"""
import re
import sys
import tomllib


def parse_edit(text):
    """[(table, key, line)] from a snippet; only tables and one-line pairs."""
    table, pairs = None, []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if m := re.fullmatch(r"\[([A-Za-z0-9_.-]+)\]", line):
            table = m.group(1)
        elif m := re.match(r"([A-Za-z0-9_-]+)\s*=", line):
            if table is None:
                sys.exit(f"toml_edit: {line!r} is outside a table")
            pairs.append((table, m.group(1), line))
        else:
            sys.exit(f"toml_edit: cannot apply {line!r} (one-line key = value pairs only)")
    return pairs


def table_span(lines, table):
    """(start, end) of a table's lines after its header, or None."""
    header = re.compile(r"\s*\[([A-Za-z0-9_.-]+)\]\s*(#.*)?$")
    start = None
    for i, line in enumerate(lines):
        m = header.match(line)
        if m and start is not None:
            return start, i
        if m and m.group(1) == table:
            start = i + 1
    return (start, len(lines)) if start is not None else None


def set_key(lines, table, key, text):
    span = table_span(lines, table)
    if span is None:
        lines += ["", f"[{table}]", text]
        return
    start, end = span
    key_line = re.compile(rf"\s*#?\s*{re.escape(key)}\s*=")
    for i in range(start, end):
        if key_line.match(lines[i]):
            lines[i] = text
            return
    last = max((i for i in range(start, end) if lines[i].strip()), default=start - 1)
    lines.insert(last + 1, text)


def main():
    path, edits = sys.argv[1], sys.argv[2:]
    with open(path) as f:
        lines = f.read().splitlines()
    wanted = {}
    for edit in edits:
        with open(edit) as f:
            text = f.read()
        for table, key, line in parse_edit(text):
            set_key(lines, table, key, line)
        for table, values in tomllib.loads(text).items():
            for key, value in values.items():
                wanted[(table, key)] = value
    result = "\n".join(lines) + "\n"
    parsed = tomllib.loads(result)
    for (table, key), value in wanted.items():
        if parsed.get(table, {}).get(key) != value:
            sys.exit(f"toml_edit: {table}.{key} did not end up as {value!r}")
    with open(path, "r+") as f:
        f.write(result)
        f.truncate()


if __name__ == "__main__":
    main()
