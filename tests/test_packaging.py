"""environment.yml (conda-forge) installs what pyproject.toml asks for: every dependency, core and extras,
named with the same lower bound."""
import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip's own copy of tomli
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# pip name -> its conda-forge name(s), where they differ.
CONDA_NAMES = {"torch": ["pytorch-cpu"], "dask": ["dask", "distributed"],
               "opencv-contrib-python-headless": ["py-opencv"], "matplotlib": ["matplotlib-base"]}
# Left out of environment.yml on purpose, and why (the file says how to add it).
LEFT_OUT = {"dask-cuda": "GPU clusters only"}


def _requirement(text):
    """(name, lower bound) of a requirement such as 'dask[array,distributed]>=2023.1'."""
    m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)(\[[^]]*\])?\s*(>=\s*([^,;\s]+))?.*", text)
    return m.group(1).lower(), m.group(4)


def _environment():
    """{name: lower bound} of environment.yml's conda packages and its pip section."""
    found = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.fullmatch(r"\s+-\s+(?!-e\b)([A-Za-z0-9_.-]+)\s*(>=\s*(\S+))?\s*", line.split("#", 1)[0])
        if m:
            found[m.group(1).lower()] = m.group(3)
    return found


def test_environment_yml_names_every_dependency_of_pyproject_with_its_bound():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += [r for r in extra if not r.startswith("geosr[")]
    env = _environment()
    assert "python" in env and env["python"] == project["requires-python"].removeprefix(">=")
    missing, bounds = [], []
    for name, bound in map(_requirement, wanted):
        if name in LEFT_OUT:
            assert name not in env and name in (ROOT / "environment.yml").read_text(), f"say how to add {name}"
            continue
        for conda in CONDA_NAMES.get(name, [name]):
            if conda not in env:
                missing.append(f"{name} (conda-forge: {conda})")
            elif env[conda] != bound:
                bounds.append(f"{conda}: {env[conda]} in environment.yml, {bound} in pyproject.toml")
    assert not missing, f"environment.yml lacks {missing}"
    assert not bounds, bounds
