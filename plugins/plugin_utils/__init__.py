# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-only code: the fleet schema, its sources and problems, overlays, the summary.

Private to edgefleet.k8s: no stable API, may change in any release. Imported by the
inventory, filter and callback plugins; never shipped to a node.
"""
