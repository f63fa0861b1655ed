"""
Write one benchmark's results into its own section of docs/PERFORMANCE.md.

Each benchmark owns the text between ``<!-- BEGIN name -->`` and
``<!-- END name -->``; running one benchmark never touches the others'
numbers.  Usage from a bench script::

    from bench.report import write_section
    write_section("dns", markdown_text)
"""

import os
import re

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   "docs", "PERFORMANCE.md")


def write_section(name, markdown, doc=DOC):
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    with open(doc, encoding="utf-8") as f:
        text = f.read()
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda m: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = doc + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, doc)
