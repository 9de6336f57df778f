#!/usr/bin/env bash
# Build the geosr QGIS plugin, install it into this user's QGIS profile and enable it, so that
# `qgis_process run geosr:upsample -- SOURCE=... GUIDE=... OUTPUT=...` works headless and the
# algorithm shows in QGIS's Processing toolbox (restart QGIS if it is open).
# The provider runs the geosr command found now ($GEOSR_CLI, else `geosr` on PATH, e.g. the active
# virtual environment's); it can be changed in Settings > Options > Processing > Providers > geosr.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

zip="$(python3 "$here/build.py")"
echo "built $zip"

cli="${GEOSR_CLI:-$(command -v geosr || true)}"
if [ -z "$cli" ]; then
    echo "warning: no geosr command found: install geosr (pip install geosr, or the wheel), then set its path in" \
         "Settings > Options > Processing > Providers > geosr, or run this again with it on PATH" >&2
fi

# Qt's settings writer, as QGIS's own Python has it (Debian: python3-pyqt5), where there is one.
py=python3
for candidate in "${QGIS_PYTHON:-}" /usr/bin/python3; do
    if [ -n "$candidate" ] && "$candidate" -c "import PyQt5.QtCore" 2>/dev/null; then
        py="$candidate"
        break
    fi
done
"$py" "$here/install.py" "$zip" ${cli:+--cli "$cli"}
