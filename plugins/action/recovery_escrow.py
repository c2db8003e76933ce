# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action side of edgefleet.k8s.recovery_escrow: runs on the controller only."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.parsing.vault import VaultLib
from ansible.plugins.action import ActionBase
from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import atomic_write, read_bytes
from ansible_collections.edgefleet.k8s.plugins.module_utils._disk import escrow as _luks_escrow

ARGUMENT_SPEC: dict[str, Any] = {
    "escrow_dir": {"type": "str", "required": True},
    "host": {"type": "str", "required": True},
    "volume": {"type": "str", "default": "data"},
    "vault_id": {"type": "str"},
}


class ActionModule(ActionBase):  # type: ignore[misc]  # ansible is untyped here
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            path = _luks_escrow.escrow_path(args["escrow_dir"], args["host"], args["volume"])
        except ValueError as exc:
            return {**result, "failed": True, "msg": f"recovery_escrow: {exc}"}
        vault_secrets = list(self._loader._vault.secrets or [])
        if args["vault_id"]:
            vault_secrets = [s for s in vault_secrets if s[0] == args["vault_id"]]
        if not vault_secrets:
            return {
                **result,
                "failed": True,
                "msg": "recovery_escrow: no ansible-vault secret is configured"
                + (f" for vault id {args['vault_id']!r}" if args["vault_id"] else "")
                + "; the recovery passphrase is escrowed only encrypted. Pass --vault-password-file "
                "(or --vault-id, or set ANSIBLE_VAULT_PASSWORD_FILE).",
            }
        vault = VaultLib(vault_secrets)
        stored = read_bytes(path)
        if stored is not None:
            try:
                passphrase = to_text(vault.decrypt(stored)).strip("\n")
            except AnsibleError as exc:
                return {**result, "failed": True, "msg": f"recovery_escrow: cannot decrypt {path}: {exc.message}"}
            problems = _luks_escrow.passphrase_problems(passphrase)
            if problems:
                return {**result, "failed": True, "msg": f"recovery_escrow: {path}: " + "; ".join(problems)}
            return {**result, "changed": False, "path": path, "created": False, "passphrase": passphrase}
        passphrase = _luks_escrow.generate_passphrase()
        if not self._task.check_mode:
            vault_id, secret = vault_secrets[0]
            data = vault.encrypt(to_bytes(passphrase + "\n"), secret=secret, vault_id=vault_id)
            atomic_write(path, data, mode=0o600, dir_mode=0o700)
        return {**result, "changed": True, "path": path, "created": True, "passphrase": passphrase}
