# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pull mode: the agent a node runs on its timer to converge itself from a signed Git commit.

Private to edgefleet.k8s: no stable API, may change in any release. ``agent.py`` is installed on the node
as a standalone program (it runs before any commit is verified, so it imports only the standard library).
"""
