"""Install the plugin zip into a QGIS profile and enable it: python3 qgis/install.py ZIP [--cli PATH].

The profile is QGIS's default one for this user ($QGIS_CUSTOM_CONFIG_PATH, or the platform's data folder,
then profiles/$QGIS_PROFILE or default). Only the plugin's own folder is replaced. QGIS's settings file is
edited with Qt's QSettings where PyQt5 is there (as QGIS writes it), else as an INI file.
"""
from __future__ import annotations

import argparse
import configparser
import os
import platform
import shutil
import sys
import zipfile
from pathlib import Path

NAME = "geosr_processing"


def profile_dir() -> Path:
    root = os.environ.get("QGIS_CUSTOM_CONFIG_PATH")
    if root:
        base = Path(root)
    elif platform.system() == "Darwin":
        base = Path.home() / "Library" / "Application Support" / "QGIS" / "QGIS3"
    elif platform.system() == "Windows":
        base = Path(os.environ["APPDATA"]) / "QGIS" / "QGIS3"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "QGIS" / "QGIS3"
    return base / "profiles" / os.environ.get("QGIS_PROFILE", "default")


def install(zip_path: Path, plugins: Path) -> Path:
    target = plugins / NAME
    if target.exists():
        metadata = target / "metadata.txt"
        if not metadata.is_file() or "name=geosr" not in metadata.read_text():
            sys.exit(f"{target} exists and is not the geosr plugin: move it away, then run this again")
        shutil.rmtree(target)
    plugins.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(plugins)
    return target


def enable(profile: Path, cli: str | None) -> None:
    """PythonPlugins/geosr_processing = true (what the Plugins dialog sets) and the provider's CLI path."""
    ini = profile / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    values = {f"PythonPlugins/{NAME}": "true"}
    if cli:
        values["Processing/Configuration/GEOSR_CLI"] = cli
    try:
        from PyQt5.QtCore import QSettings
    except ImportError:
        QSettings = None
    if QSettings is not None:
        s = QSettings(str(ini), QSettings.IniFormat)
        for key, value in values.items():
            s.setValue(key, value)
        s.sync()
        return
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read(ini)
    for key, value in values.items():
        section, name = key.split("/", 1)
        if not parser.has_section(section):
            parser.add_section(section)
        parser.set(section, name.replace("/", "\\"), value)
    tmp = ini.with_name(ini.name + ".geosr-tmp")
    with open(tmp, "w") as f:
        parser.write(f, space_around_delimiters=False)
    tmp.replace(ini)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("zip", type=Path)
    parser.add_argument("--cli", help="the geosr command the provider runs")
    args = parser.parse_args()
    profile = profile_dir()
    print(f"installed {install(args.zip, profile / 'python' / 'plugins')}")
    enable(profile, args.cli)
    print(f"enabled it in {profile / 'QGIS' / 'QGIS3.ini'}" + (f", running {args.cli}" if args.cli else ""))
