# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host hardening on the node: kernel parameters.

Private to edgefleet.k8s: no stable API, may change in any release. Runs on nodes
(it ships inside modules), so it imports nothing from plugin_utils, modules or roles.
"""
