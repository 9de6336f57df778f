"""Run one of the notebooks headless: the examples are the notebooks' workflows from the command line.

Each workflow is written once, in its notebook; an example script parses its command line into the
notebook's parameters (the cell tagged ``parameters``) and executes the notebook with papermill
(``pip install 'geosr[notebooks]'``). The executed copy, with its printed output and its pictures, is
saved in the output folder beside the rasters the notebook writes, and what its cells printed is
printed here.
"""
from __future__ import annotations

import json
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run(name: str, out_dir, overwrite: bool = False, **parameters) -> Path:
    """Execute notebooks/``name`` with ``parameters`` (``None`` values left at the notebook's defaults),
    writing into ``out_dir``; returns the path of the executed notebook. Files of an earlier run in
    ``out_dir`` are replaced only with ``overwrite`` (the notebook's OVERWRITE)."""
    try:
        import papermill
    except ImportError as e:
        raise SystemExit(f"this example runs notebooks/{name} and needs papermill: pip install 'geosr[notebooks]' "
                         f"({e})") from None
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    executed = out / name
    if executed.exists() and not overwrite:
        raise SystemExit(f"{executed} exists (an earlier run?): pass --overwrite to replace it and the rasters "
                         "the notebook writes, or choose another --out")
    given = {k: v for k, v in parameters.items() if v is not None}
    papermill.execute_notebook(str(NOTEBOOKS / name), str(executed),
                               parameters={"OUT_DIR": str(out), "OVERWRITE": overwrite, **given},
                               cwd=str(out), kernel_name="python3", progress_bar=False)
    print(printed(executed), end="")
    print("wrote", executed, "(the executed notebook, with its output and pictures)")
    return executed


def printed(notebook) -> str:
    """What the code cells of an executed notebook printed (their stdout), in order."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    return "".join("".join(o["text"]) for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")
