#!/usr/bin/env python3
"""Import circles between the crate's source files (`src/` and `arch/`).

Builds the module tree from `src/lib.rs` (`mod x;`, `#[path = ..]`, inline
`mod x { .. }`), reads every `crate::`/`super::`/`self::` path in code (use
declarations, paths in expressions, `sym` operands; comments and strings are
ignored), resolves each to the file that *defines* the named item (through
`pub use` re-exports and globs of facade modules), and lists the strongly
connected components of the file graph. Test-only modules (`#[cfg(test)]`,
`#[cfg(all(test, ..))]`) are left out: tests import their parents by design.

Edges named in `.ci/import_cycles.allow` (`from.rs -> to.rs  # why`) are the
documented upward references; they are dropped before the check. Exits 1 if a
circle remains, printing each circle and the lines that make its edges.

    python3 .ci/import_cycles.py            # check
    python3 .ci/import_cycles.py --edges    # also print every edge
"""

import os
import re
import sys
from collections import defaultdict

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ALLOW = os.path.join(ROOT, ".ci", "import_cycles.allow")

ITEM_KINDS = r"(?:fn|struct|enum|union|trait|type|const|static|mod|macro_rules!)"
DEFINITION = re.compile(
    r"^\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?(?:unsafe\s+|const\s+|extern\s+\"[^\"]*\"\s+|async\s+)*"
    + ITEM_KINDS
    + r"\s+([A-Za-z_][A-Za-z0-9_]*)",
    re.M,
)
MACRO_DEF = re.compile(r"macro_rules!\s*([A-Za-z_][A-Za-z0-9_]*)")
PATH = re.compile(r"(?<![A-Za-z0-9_:])((?:crate|super|self)(?:::(?:[A-Za-z_][A-Za-z0-9_]*|\{))+)")


def strip(text):
    """The text with comments, string and char literals blanked (lines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('"' + re.sub(r"[^\n]", " ", text[i + 1 : j]) + '"')
            i = j + 1
        elif c == "'" and re.match(r"'(?:\\.|[^\\'])'", text[i:]):
            m = re.match(r"'(?:\\.|[^\\'])'", text[i:])
            out.append(" " * len(m.group(0)))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Module:
    """A module: its path, the files that implement it (one per cfg), children."""

    def __init__(self, path, files):
        self.path = path
        self.files = files
        self.children = {}


def matching_brace(text, open_at):
    depth = 0
    for j in range(open_at, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(text)


MOD_DECL = re.compile(
    r"((?:#\[[^\]]*\]\s*)*)(?:pub(?:\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*([;{])"
)


def is_test_only(attrs):
    return re.search(r"#\[cfg\((?:test|all\(test\b[^\]]*)\)\]", attrs) is not None


class Crate:
    def __init__(self):
        self.texts = {}  # file -> stripped text
        self.raw = {}
        self.regions = defaultdict(list)  # file -> [(start, end, module)] for inline mods
        self.root = Module(("crate",), [])
        self.module_of_file = {}
        self.load(self.root, os.path.join(ROOT, "src", "lib.rs"), 0, None, os.path.join(ROOT, "src"))

    def read(self, file):
        if file not in self.texts:
            with open(file, encoding="utf-8") as f:
                self.raw[file] = f.read()
            self.texts[file] = strip(self.raw[file])
        return self.texts[file]

    def load(self, module, file, start, end, child_dir):
        """Reads the module body `file[start:end]`; `child_dir` is where `mod x;` looks."""
        text = self.read(file)
        if end is None:
            end = len(text)
            module.files.append(file)
            self.module_of_file[file] = module
        pos = start
        while True:
            m = MOD_DECL.search(text, pos, end)
            if not m:
                break
            attrs, name, kind = m.group(1), m.group(2), m.group(3)
            if is_test_only(attrs):
                pos = matching_brace(text, m.end() - 1) + 1 if kind == "{" else m.end()
                continue
            child = module.children.get(name) or Module(module.path + (name,), [])
            module.children[name] = child
            raw_attrs = self.raw[file][m.start(1) : m.end(1)]
            path_attr = re.search(r'#\[path\s*=\s*"([^"]+)"\]', raw_attrs)
            if kind == "{":
                close = matching_brace(text, m.end() - 1)
                self.regions[file].append((m.end(), close, child))
                self.load(child, file, m.end(), close, os.path.join(child_dir, name))
                pos = close + 1
                continue
            if path_attr:
                target = os.path.normpath(os.path.join(os.path.dirname(file), path_attr.group(1)))
                sub_dir = os.path.dirname(target)
            else:
                flat = os.path.join(child_dir, name + ".rs")
                nested = os.path.join(child_dir, name, "mod.rs")
                target = flat if os.path.exists(flat) else nested
                sub_dir = os.path.join(child_dir, name)
            if os.path.exists(target):
                self.load(child, target, 0, None, sub_dir)
            pos = m.end()

    def module_at(self, file, offset):
        """The innermost module whose body holds `offset` of `file`."""
        best = self.module_of_file.get(file)
        best_len = None
        for start, end, module in self.regions.get(file, []):
            if start <= offset <= end and (best_len is None or end - start < best_len):
                best, best_len = module, end - start
        return best

    def lookup_module(self, segments):
        module = self.root
        for s in segments[1:]:
            module = module.children.get(s)
            if module is None:
                return None
        return module

    # ---- what a module's files define and re-export

    def defines(self, module, name):
        found = []
        for file in module.files:
            text = self.texts[file]
            names = set(DEFINITION.findall(text)) | set(MACRO_DEF.findall(text))
            if name in names:
                found.append(file)
        return found

    def reexports(self, module):
        """(name or '*', full path segments) for every `use` in the module's files."""
        out = []
        for file in module.files:
            for m in re.finditer(r"(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", self.texts[file]):
                for path in expand_use(m.group(1)):
                    out.append((file, path))
        return out

    def resolve(self, module, segments, depth=0):
        """Files defining the item `segments` names, seen from `module`."""
        if depth > 12:
            return []
        segments = absolute(module, segments)
        if segments is None:
            return []
        # The longest prefix that is a module.
        current = self.root
        i = 1
        while i < len(segments) and segments[i] in current.children:
            current = current.children[segments[i]]
            i += 1
        rest = segments[i:]
        if not rest:
            return current.files
        name = rest[0]
        files = self.defines(current, name)
        if files:
            return files
        # Through a re-export of the facade module `current`.
        for file, path in self.reexports(current):
            alias = path[-1] if not path[-1].startswith("as ") else path[-1][3:]
            real = path if not path[-1].startswith("as ") else path[:-1]
            if real[-1] == "*":
                files = self.resolve(current, real[:-1] + [name] + rest[1:], depth + 1)
            elif alias == name:
                files = self.resolve(current, real + rest[1:], depth + 1)
            else:
                continue
            if files:
                return files
        return current.files


def absolute(module, segments):
    """`segments` made absolute (`crate::...`) from `module`."""
    segments = list(segments)
    if segments[0] == "crate":
        return segments
    base = list(module.path)
    while segments and segments[0] in ("self", "super"):
        if segments[0] == "super":
            if len(base) == 1:
                return None
            base.pop()
        segments.pop(0)
    return base + segments


def expand_use(tree):
    """The paths of a use tree (`a::{b, c::d as e, f::*}`), `as x` kept as a last segment."""
    tree = re.sub(r"\s+", " ", tree).strip()

    def parse(s):
        s = s.strip()
        brace = s.find("{")
        if brace < 0:
            alias = None
            m = re.match(r"(.*?)\s+as\s+(\w+)$", s)
            if m:
                s, alias = m.group(1), m.group(2)
            segs = [x for x in s.split("::") if x]
            if alias:
                segs.append("as " + alias)
            return [segs] if segs else []
        prefix = [x for x in s[:brace].split("::") if x]
        inner = s[brace + 1 : s.rfind("}")]
        parts, depth, cur = [], 0, ""
        for ch in inner:
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += ch == "{"
            depth -= ch == "}"
            cur += ch
        parts.append(cur)
        out = []
        for p in parts:
            if p.strip() == "self":
                out.append(prefix)
            elif p.strip():
                out.extend(prefix + sub for sub in parse(p))
        return out

    return parse(tree)


ISA_DIRS = ("arch/x86_64/", "arch/aarch64/")


def same_world(file, target):
    """False for an edge between the two ISA folders: each is the same module for
    another target (`#[path]` under a cfg), so neither can name the other."""
    a = next((d for d in ISA_DIRS if d in file), None)
    b = next((d for d in ISA_DIRS if d in target), None)
    return a is None or b is None or a == b


def references(crate):
    """(from file, to file, line) for every crate-internal path in code."""
    edges = defaultdict(list)
    for file, text in crate.texts.items():
        # Test-only inline modules are not part of the graph.
        skip = []
        for m in MOD_DECL.finditer(text):
            if is_test_only(m.group(1)) and m.group(3) == "{":
                skip.append((m.start(), matching_brace(text, m.end() - 1)))
        for m in re.finditer(r"(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", text):
            if any(a <= m.start() <= b for a, b in skip):
                continue
            module = crate.module_at(file, m.start())
            for path in expand_use(m.group(1)):
                if path[0] not in ("crate", "super", "self"):
                    continue
                path = [p for p in path if not p.startswith("as ")]
                if path[-1] == "*":
                    path = path[:-1]
                for target in crate.resolve(module, path):
                    if target != file and same_world(file, target):
                        edges[(file, target)].append(line_of(text, m.start()))
        for m in PATH.finditer(text):
            if any(a <= m.start() <= b for a, b in skip):
                continue
            if re.match(r"\s*use\s", text[max(0, m.start() - 40) : m.start()][-8:]):
                continue
            segs = [s for s in m.group(1).split("::") if s and s != "{"]
            module = crate.module_at(file, m.start())
            for target in crate.resolve(module, segs):
                if target != file:
                    edges[(file, target)].append(line_of(text, m.start()))
    return edges


def line_of(text, offset):
    return text.count("\n", 0, offset) + 1


def components(nodes, graph):
    """Tarjan's strongly connected components with more than one node."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    crate = Crate()
    rel = lambda f: os.path.relpath(f, ROOT)
    edges = {(rel(a), rel(b)): lines for (a, b), lines in references(crate).items()}
    allowed = set()
    if os.path.exists(ALLOW):
        for line in open(ALLOW, encoding="utf-8"):
            line = line.split("#", 1)[0].strip()
            if line:
                a, b = (x.strip() for x in line.split("->"))
                allowed.add((a, b))
    stale = sorted(e for e in allowed if e not in edges)
    graph = defaultdict(set)
    nodes = {rel(f) for f in crate.texts}
    for (a, b) in edges:
        if (a, b) not in allowed:
            graph[a].add(b)
    if "--edges" in sys.argv:
        for (a, b), lines in sorted(edges.items()):
            mark = " (allowed)" if (a, b) in allowed else ""
            print(f"{a} -> {b}{mark}  lines {','.join(map(str, lines[:6]))}")
    circles = components(nodes, graph)
    for edge in stale:
        print(f"import_cycles.allow names an edge that no longer exists: {edge[0]} -> {edge[1]}")
    print(f"{len(nodes)} files, {len(edges)} edges ({len(allowed) - len(stale)} allowed), {len(circles)} circle(s)")
    for comp in circles:
        print(f"\ncircle of {len(comp)} files: {', '.join(comp)}")
        members = set(comp)
        for (a, b), lines in sorted(edges.items()):
            if a in members and b in members and (a, b) not in allowed:
                print(f"  {a} -> {b}   ({a}:{lines[0]})")
    return 1 if circles or stale else 0


if __name__ == "__main__":
    sys.exit(main())
