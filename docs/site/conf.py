# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Sphinx configuration of the edgefleet.k8s documentation site (make docs, docs/awx.md). Started from
# `antsibull-docs sphinx-init`; no intersphinx (no network here), Markdown pages from docs/ through MyST.
from __future__ import annotations

project = "edgefleet.k8s"
copyright = "edgefleet.k8s contributors"
title = "edgefleet.k8s documentation"
html_short_title = "edgefleet.k8s"
extensions = ["sphinx_antsibull_ext", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
pygments_style = "ansible"
highlight_language = "YAML+Jinja"
html_theme = "sphinx_ansible_theme"
html_show_sphinx = False
display_version = False
html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False
default_role = "any"
nitpicky = True
myst_heading_anchors = 3
