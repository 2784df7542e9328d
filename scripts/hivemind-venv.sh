# Sourced by the hivemind scripts: sets VENV to a venv with hivemind 1.1.12, making it on first use.
# Env: HIVEMIND_VENV        venv to use or create (default: .venv-hivemind in the repo)
#      HIVEMIND_CONSTRAINTS pip constraints for the install (default: scripts/hivemind-constraints.txt,
#                           the versions this project runs hivemind 1.1.12 with)
# Creating the venv runs `pip install hivemind==1.1.12`, which pulls torch (about 5.6 GB,
# a few minutes).
VENV="${HIVEMIND_VENV:-$PWD/.venv-hivemind}"
HIVEMIND_CONSTRAINTS="${HIVEMIND_CONSTRAINTS:-scripts/hivemind-constraints.txt}"
if ! "$VENV/bin/python" -c 'import hivemind, sys; sys.exit(hivemind.__version__ != "1.1.12")' 2>/dev/null; then
    echo "== creating $VENV with hivemind 1.1.12"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install hivemind==1.1.12 -c "$HIVEMIND_CONSTRAINTS"
fi
