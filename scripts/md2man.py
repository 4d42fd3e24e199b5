#!/usr/bin/env python3
"""Turns a daemon's manual (vhost-user-X/README.md) into a roff man page on stdout.

Usage: md2man.py README.md VERSION DATE

The conversion itself is Debian's go-md2man (a 2 MB package; pandoc would be 170 MB). Its output
then gets four fixes, each for something go-md2man 2.0 leaves that groff warns about or renders
wrongly in these manuals:
  - characters beyond ASCII (em dashes, µ, ×) become groff's \\[uXXXX] escapes, so the page renders
    the same without preconv (groff -Tutf8 alone rejects raw UTF-8);
  - a text line starting with ' or . (a wrapped sentence) would be read as a request: it gets a
    leading \\& (a zero-width character);
  - table cells become tbl text blocks and the last column expands, so tables wrap within the
    terminal's width instead of running past it;
  - GitHub tables write a | inside a cell as \\|; go-md2man keeps the backslash.
"""
import re
import subprocess
import sys

# The requests go-md2man writes; a line starting with '.' and anything else is text.
MACROS = {"TH", "SH", "SS", "PP", "LP", "RS", "RE", "nf", "fi", "TP", "IP", "TS", "TE", "br", "sp",
          "nh", "ad", "in", "ti", "B", "I", "EX", "EE", "UR", "UE", "MT", "ME"}


def title_line(markdown, version, date):
    """'# vhost-user-blk(8)' becomes go-md2man's title: name, section, date, source, manual."""
    first, _, rest = markdown.partition("\n")
    m = re.fullmatch(r"# ([a-z0-9-]+)\((\d)\)", first.strip())
    if not m:
        sys.exit("md2man.py: the manual must start with '# name(section)', not %r" % first)
    name, section = m.groups()
    return '# %s %s "%s" "vhost-user %s" "vhost-user daemons"\n%s' % (
        name, section, date, version, rest)


def table_rows(lines):
    """Splits tbl data lines into rows of cells; a cell may already be a T{ ... T} block."""
    rows, row, block = [], [], None
    for line in lines:
        if block is not None:
            if line.startswith("T}"):
                row.append(" ".join(block))
                block = None
                line = line[2:]
                if not line:
                    rows.append(row)
                    row = []
                    continue
                line = line.lstrip("\t")
            else:
                block.append(line)
                continue
        cells = line.split("\t")
        if cells[-1] == "T{":
            row.extend(cells[:-1])
            block = []
        else:
            rows.append(row + cells)
            row = []
    return rows


def fix_table(lines):
    """lines: everything between .TS and .TE. Returns the same table, every cell a text block."""
    options = lines[0]  # e.g. "allbox;"
    end = next(i for i, l in enumerate(lines) if l.rstrip().endswith("."))
    rows = table_rows(lines[end + 1:])
    columns = max(len(r) for r in rows)
    # Every column left-aligned, the last one taking what the others leave of the line.
    out = [options, " ".join(["l"] * (columns - 1) + ["lx"]) + " ."]
    for row in rows:
        cells = [c.replace("\\\\|", "|") for c in row] + [""] * (columns - len(row))
        out.append("\t".join("T{\n%s\nT}" % c for c in cells))
    return out


def fix_roff(roff):
    out, table = [], None
    for line in roff.split("\n"):
        line = re.sub(r"[^\x00-\x7f]", lambda m: "\\[u%04X]" % ord(m.group()), line)
        if table is not None:
            if line == ".TE":
                out.extend(fix_table(table))
                out.extend([line, ".ad b"])
                table = None
            else:
                table.append(line)
            continue
        if line == ".TS":
            # Narrow columns are filled ragged-right: justified, long words leave gaps groff
            # warns about ("cannot adjust line").
            out.extend([".ad l", line])
            table = []
            continue
        if line.startswith("'") or (line.startswith(".") and line[1:].split(" ")[0] not in MACROS):
            line = "\\&" + line
        out.append(line)
    return "\n".join(out)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.split("\n\n")[1])
    path, version, date = sys.argv[1:]
    with open(path, encoding="utf-8") as f:
        markdown = title_line(f.read(), version, date)
    roff = subprocess.run(["go-md2man"], input=markdown, capture_output=True, text=True,
                          check=True).stdout
    sys.stdout.write(fix_roff(roff))


if __name__ == "__main__":
    main()
