#!/usr/bin/env python3
"""Reports import cycles between the modules of src/ (top-level modules, and
http's submodules), from `use` paths and qualified paths in code, not comments.
Exit 1 when there is a cycle. Run from the repository root."""
import collections
import os
import re
import sys

def module_of(path):
    parts = os.path.relpath(path, "src")[:-3].split("/")
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts

def unit(parts):
    return "::".join(parts[:2]) if parts and parts[0] == "http" and len(parts) > 1 else (parts[0] if parts else "")

graph = collections.defaultdict(set)
for root, _, files in os.walk("src"):
    for name in files:
        if not name.endswith(".rs"):
            continue
        path = os.path.join(root, name)
        here = module_of(path)
        code = open(path).read().split("#[cfg(test)]")[0]
        code = "\n".join(line.split("//")[0] for line in code.splitlines())
        targets = [t.split("::") for t in re.findall(r"\bcrate::((?:[a-z_0-9]+::)*[a-z_0-9]+)", code)]
        for rel in re.findall(r"\bsuper::((?:[a-z_0-9]+::)*[a-z_0-9]+)", code):
            targets.append(here[:-1] + rel.split("::"))
        for rel in re.findall(r"\bself::((?:[a-z_0-9]+::)*[a-z_0-9]+)", code):
            targets.append(here + rel.split("::"))
        for prefix, group in re.findall(r"\b(crate|super|self)::\{([^}]*)\}", code):
            base = {"crate": [], "super": here[:-1], "self": here}[prefix]
            for item in re.findall(r"[a-z_0-9]+(?:::[a-z_0-9]+)*", group):
                targets.append(base + item.split("::"))
        for target in targets:
            a, b = unit(here), unit(target)
            if a and b and a != b and not b.startswith(a + "::") and not a.startswith(b + "::"):
                graph[a].add(b)

cycles = set()
def visit(node, stack):
    for nxt in sorted(graph[node]):
        if nxt in stack:
            cycle = stack[stack.index(nxt):]
            turn = cycle.index(min(cycle))
            cycles.add(" -> ".join(cycle[turn:] + cycle[:turn] + [min(cycle)]))
        elif len(stack) < 12:
            visit(nxt, stack + [nxt])
for node in list(graph):
    visit(node, [node])
for cycle in sorted(cycles):
    print("cycle:", cycle)
if "-v" in sys.argv:
    for node in sorted(graph):
        print(node, "->", ", ".join(sorted(graph[node])))
sys.exit(1 if cycles else 0)
