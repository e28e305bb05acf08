"""MkDocs hooks for the documentation site (mkdocs.yml: ``hooks``).

The docstrings cross-reference in Sphinx's roles (:func:`lstm_backward`), which
mkdocstrings' Google-style parser leaves as text: drop the role, keep the code.
"""

import re

ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|obj):(?=<code>)")


def on_page_content(html, page, config, files):
    return ROLE.sub("", html)
