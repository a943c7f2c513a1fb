"""Stand-in for the pip bootstrap script that ansible-test downloads.

ansible-test fetches ``get-pip-<version>.py`` from a host outside the package
registries; where that host is unreachable, this script does the same job from what
is at hand: ``ensurepip`` puts the interpreter's bundled pip into the empty virtual
environment, then that pip installs the requested versions from the package index.
It accepts get-pip's own ``--no-setuptools`` / ``--no-wheel`` flags.
"""

import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

# In a child process: ensurepip turns off pip's configuration (PIP_CONFIG_FILE=/dev/null)
# in its own environment, which would hide the site's index and CA settings below.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))
