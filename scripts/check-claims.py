#!/usr/bin/env python3
"""check-claims.py -- check what the documents and comments claim about files.

Usage: scripts/check-claims.py [--root DIR]

Three checks, each problem printed on its own line (scripts/check-tutorial.sh
runs this and counts them):

  1. A function the prose names together with a file is defined in that
     file. The documents (TUTORIAL.md, README.md, docs/*.md) say it as
     "`name()` in `src/file.c`", "`name()` in src/file.c" or
     "`name()` (`src/file.c`...", possibly across a line break. Defined
     means a line starting with "name(" (every definition starts at
     column 0) or a "#define name("; in a header, a declaration naming
     it is enough. A function from a library (nghttp2_..., poll, ...)
     claimed in a file must at least be called there. Code blocks are
     skipped.

  2. A file a code comment names exists in the repository: comments in
     the C sources and headers, the shell and Python scripts and the
     Makefile may name a path (src/..., tests/..., docs/...) or a bare
     file name (lock.h, ARCHITECTURE.md), and each must be found (a bare
     name anywhere in the tree). "see NAME-LIKE-THIS" must name a file
     too. Names that are patterns (NAME, *, <...>) and files of the Go
     original (introduced as "the original's") are not checked; system
     headers are not files of the tree and are skipped too.

  3. Every function a picture's source names (docs/*.dot, docs/*.msc: a
     lower-case name with an underscore, such as pool_pick) is defined
     in the code or comes from a library, as for the prose.

Exits 0 when every claim holds, 1 otherwise.
"""

import argparse
import os
import re
import subprocess
import sys

CODE_DIRS = ("src", "include", "examples", "tests", "fuzz", "scripts", "bench")
DOC_GLOBS = ("TUTORIAL.md", "README.md", "docs")
EXTERNAL_PREFIXES = ("nghttp2_", "http_parser", "curl_", "pthread_", "cmocka_")

PATH = r"(?:src|include|examples|tests|fuzz)/[A-Za-z0-9_/.-]*\.[ch]"
CLAIM_RE = re.compile(
    r"`([A-Za-z_][A-Za-z0-9_]*)\([^`]*\)`"      # `name()`
    r"(?:\s+in\s+`?|\s+\(`)"                     # in  /  (`
    r"(" + PATH + r")\b")

# File names a comment may mention. A path starts with one of the tree's
# directories; a bare name ends in an extension the tree uses.
TREE_DIRS = r"(?:src|tests|include|examples|scripts|docs|fuzz|bench)"
PATH_RE = re.compile(r"(?<![A-Za-z0-9_./-])(" + TREE_DIRS +
                     r"/[A-Za-z0-9_./*<>{}-]*[A-Za-z0-9_*>}])")
BARE_RE = re.compile(r"(?<![A-Za-z0-9_./<-])([A-Za-z0-9_-]+\.(?:c|h|md|sh|py|go|dot|svg))\b")
SEE_RE = re.compile(r"\bsee\s+([A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+)\b")
# A pattern rather than a file: a wildcard, or a placeholder such as
# NAME, TARGET or x.c standing for any file.
PATTERN_WORDS = re.compile(r"[*<>{}]|\.\.\.|/(?:[A-Z][A-Z0-9_]+|x)(?:[./_]|$)|NAME")
BARE_PATTERN = re.compile(r"[*<>{}]|\.\.\.|^x\.|NAME")
SYSTEM_HEADERS = re.compile(r"^(?:std\w*|string|strings|errno|unistd|poll|pthread|"
                            r"signal|time|limits|fcntl|ctype|netdb|spawn|sched|"
                            r"inttypes|setjmp|cmocka|ftw|dirent|getopt|assert|"
                            r"math|locale|nghttp2|http_parser|curl)\.h$")


def tracked_files(root):
    """Files of the tree: git's list when there is one, else a walk."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others",
                              "--exclude-standard"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.split("\n")
        files = [f for f in out if f and os.path.exists(os.path.join(root, f))]
        if files:
            return files
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".git", "build", "bin")]
        for name in filenames:
            files.append(os.path.relpath(os.path.join(dirpath, name), root))
    return files


def read(root, path):
    with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
        return f.read()


def strip_code_blocks(text):
    """Blanks fenced code blocks, keeping line breaks so lines still count."""
    out, fenced = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append("")
        else:
            out.append("" if fenced else line)
    return "\n".join(out)


def defined_in(source, name, is_header):
    for line in source.split("\n"):
        if line.startswith(name + "(") or re.match(r"#\s*define\s+" + name + r"\(", line):
            return True
        if is_header and re.search(r"\b" + name + r"\s*\(", line):
            return True
    return False


def is_external(name):
    return name.startswith(EXTERNAL_PREFIXES) or "_" not in name


def check_claims(root, files, problems):
    docs = [f for f in files if f.endswith(".md") and
            (f in DOC_GLOBS or f.startswith("docs/"))]
    for doc in sorted(docs):
        text = strip_code_blocks(read(root, doc))
        for m in CLAIM_RE.finditer(text):
            name, path = m.group(1), m.group(2)
            line = text.count("\n", 0, m.start()) + 1
            if not os.path.isfile(os.path.join(root, path)):
                continue  # check-tutorial.sh reports missing paths
            source = read(root, path)
            if defined_in(source, name, path.endswith(".h")):
                continue
            if is_external(name) and re.search(r"\b" + name + r"\(", source):
                continue
            problems.append(f"{doc}:{line}: `{name}()` is not defined in {path}")


def comments(path, text):
    """Yields (line, comment text) for each comment line of a file."""
    if path.endswith((".c", ".h")):
        for m in re.finditer(r"/\*.*?\*/|//[^\n]*", text, re.S):
            first = text.count("\n", 0, m.start()) + 1
            for k, line in enumerate(m.group(0).split("\n")):
                yield first + k, line
    else:
        for k, line in enumerate(text.split("\n")):
            m = re.match(r"\s*#(?!!)(.*)", line) or re.search(r"\s#\s(.*)", line)
            if m:
                yield k + 1, m.group(1)


def check_comment_files(root, files, problems):
    basenames = {os.path.basename(f) for f in files}
    stems = {os.path.splitext(b)[0] for b in basenames}
    sources = [f for f in files if f.split("/")[0] in CODE_DIRS or f == "Makefile"]
    sources = [f for f in sources if f == "Makefile" or
               f.endswith((".c", ".h", ".sh", ".py"))]
    for path in sorted(sources):
        previous = ""
        for line, text in comments(path, read(root, path)):
            # The words just before a name, across a line break.
            context = previous + " " + text
            shift = len(previous) + 1
            previous = text
            for m in PATH_RE.finditer(text):
                ref = m.group(1).rstrip(".")
                before = context[max(0, shift + m.start() - 40):shift + m.start()]
                if PATTERN_WORDS.search(ref) or "original" in before:
                    continue
                if not os.path.exists(os.path.join(root, ref)):
                    problems.append(f"{path}:{line}: a comment names {ref}, "
                                    f"which is not in the tree")
            for m in BARE_RE.finditer(text):
                ref = m.group(1)
                before = context[max(0, shift + m.start() - 40):shift + m.start()]
                if (ref in basenames or SYSTEM_HEADERS.match(ref) or
                        BARE_PATTERN.search(ref) or "original" in before):
                    continue
                problems.append(f"{path}:{line}: a comment names {ref}, "
                                f"which is not in the tree")
            for m in SEE_RE.finditer(text):
                if m.group(1) not in stems:
                    problems.append(f"{path}:{line}: a comment points at "
                                    f"{m.group(1)}, which is not in the tree")


def check_pictures(root, files, problems):
    defined = set()
    for f in files:
        if f.split("/")[0] in ("src", "include", "examples", "tests", "fuzz") and \
                f.endswith((".c", ".h")):
            for line in read(root, f).split("\n"):
                m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)\(", line) or \
                    re.match(r"#\s*define\s+([A-Za-z_][A-Za-z0-9_]*)\(", line)
                if m:
                    defined.add(m.group(1))
    for f in sorted(files):
        if not (f.startswith("docs/") and f.endswith((".dot", ".msc"))):
            continue
        text = read(root, f)
        # Only the words drawn: quoted labels and graphviz's HTML labels
        # (node names and the source's comments are not shown).
        labels = [(m.start(1), m.group(1)) for m in
                  re.finditer(r'"((?:[^"\\]|\\.)*)"', text)]
        labels += [(m.start(1), m.group(1)) for m in
                   re.finditer(r"label\s*=\s*<(.*?)>\s*[\],]", text, re.S)]
        for start, label in labels:
            label = re.sub(r"\\[nlr]|<[^>]*>", " ", label)
            for m in re.finditer(r"(?<![A-Za-z0-9_])([a-z][a-z0-9]*_[a-z0-9_]+)\b", label):
                name = m.group(1)
                if name in defined or name.startswith(EXTERNAL_PREFIXES):
                    continue
                line = text.count("\n", 0, start) + 1
                problems.append(f"{f}:{line}: {name} is defined nowhere in the code")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    args = ap.parse_args()
    files = tracked_files(args.root)
    problems = []
    check_claims(args.root, files, problems)
    check_comment_files(args.root, files, problems)
    check_pictures(args.root, files, problems)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
