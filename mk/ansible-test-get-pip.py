"""Offline stand-in for ansible-test's pip bootstrap script.

ansible-test creates an empty venv for sanity tests, then bootstraps pip in it
by running a `get-pip` script that it downloads from a CI file host. That host
is not reachable here, but PyPI is. This script does the same job from parts
we have: `ensurepip` (bundled with CPython) gives the venv a pip, then that pip
installs the exact packages ansible-test asked for (e.g. `pip==24.2`) from the
package index. ansible-test runs it with the pip options as arguments, plus the
get-pip-only flags --no-setuptools / --no-wheel, which we honour by omission.

The Makefile copies this file to ~/.ansible/test/cache/get_pip_<version>.py,
the cache path ansible-test checks before it tries to download.
"""

import subprocess
import sys


def main() -> int:
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True, stdout=subprocess.DEVNULL)
    return subprocess.run([sys.executable, "-m", "pip", "install", *args], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
