"""Build the QGIS plugin zip, dist/geosr_processing-<version>.zip, from qgis/geosr_processing.

The zip holds one folder, geosr_processing/, as QGIS's "Install from ZIP" expects; its metadata.txt
gets geosr's version. Usage: python3 qgis/build.py [--outdir DIR]; it prints the zip's path.
"""
import argparse
import re
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLUGIN = HERE / "geosr_processing"
ROOT = HERE.parent


def version() -> str:
    text = (ROOT / "geosr" / "_version.py").read_text()
    return re.search(r"__version__\s*=\s*[\"']([^\"']+)[\"']", text).group(1)


def build(outdir: Path) -> Path:
    outdir.mkdir(parents=True, exist_ok=True)
    target = outdir / f"geosr_processing-{version()}.zip"
    tmp = target.with_name(f".{target.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(PLUGIN.rglob("*")):
            if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            name = f"geosr_processing/{path.relative_to(PLUGIN).as_posix()}"
            if path.name == "metadata.txt":
                text = path.read_text().replace("[general]\n", f"[general]\nversion={version()}\n", 1)
                z.writestr(name, text)
            else:
                z.write(path, name)
    tmp.replace(target)
    return target


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=Path, default=ROOT / "dist")
    print(build(parser.parse_args().outdir))
