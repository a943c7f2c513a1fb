#!/usr/bin/env bash
# ansible-test needs the collection under ansible_collections/<namespace>/<name>:
# copy the tracked files there and run sanity against the venv's Python.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dest=$work/ansible_collections/wlcg/soc
mkdir -p "$dest"
# Tracked and new (not ignored) files only, as the build would see them.
(cd "$top" && git ls-files -z --cached --others --exclude-standard) \
  | (cd "$top" && xargs -0 cp --parents -t "$dest")
# ansible-test bootstraps pip in its per-test venvs with a script it downloads from
# outside the package registries; provide an equivalent where none is cached.
pip_version=$(python - <<'PY'
import pathlib, re, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / "_internal/python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", src.read_text()).group(1))
PY
)
cache=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [ ! -s "$cache" ]; then
  mkdir -p "$(dirname "$cache")"
  cp "$top/tests/sanity/get_pip_offline.py" "$cache"
fi
# The shellcheck sanity test is skipped (with only a warning) without the program.
"$top/tests/deps.sh"
cd "$dest"
git init -q && git add -A   # ansible-test lists files through git
python_version=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ansible-test sanity --color no --python "$python_version" --requirements "$@"
