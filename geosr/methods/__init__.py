"""The methods, each a function ``run(pair, **options) -> (hr_prediction, details)``."""
from __future__ import annotations

from ..errors import InputError

LEARNED = ("mmsr", "cmsr")
# Options every method accepts, whether or not it uses them, so callers can sweep methods.
COMMON_OPTIONS = ("device", "seed", "progress")


def _mmsr(pair, **options):
    from . import mmsr
    return mmsr.run(pair, **options)


def _cmsr(pair, **options):
    from . import cmsr
    return cmsr.run(pair, **options)


def _bicubic(pair, **options):
    from .baselines import bicubic
    return _call(bicubic, pair, options)


def _guided(pair, **options):
    from .baselines import guided_filter
    return _call(guided_filter, pair, options)


def _regression(pair, **options):
    from .baselines import regression
    return _call(regression, pair, options)


def _drop_common(options, keep=()):
    """The options without the common ones, except those in ``keep`` that are set (not None)."""
    return {k: v for k, v in options.items() if k not in COMMON_OPTIONS or (k in keep and v is not None)}


def _call(fn, pair, options):
    """Call a baseline with its own options, and the common ones it declares (a seed, for one)."""
    import inspect

    _check_baseline_options(fn, options)
    return fn(pair, **_drop_common(options, keep=inspect.signature(fn).parameters))


def _check_baseline_options(fn, options):
    """An unknown option becomes an error that lists the valid ones."""
    import inspect

    params = [p for p in inspect.signature(fn).parameters if p != "pair"]
    unknown = sorted(set(_drop_common(options)) - set(params))
    if unknown:
        raise InputError(f"unknown option(s) {unknown} for method {fn.__name__!r}; valid ones are "
                         f"{params + [o for o in COMMON_OPTIONS if o not in params]}")


def check_options(name: str, options: dict) -> None:
    """Raise the InputError a run would raise for bad options, before any work starts."""
    get_method(name)
    if name in ("mmsr", "cmsr"):
        if name == "mmsr":
            from .mmsr import RUN_OPTIONS, config_for

            config_for(options.get("preset"), **{k: v for k, v in options.items()
                                                 if k not in (*COMMON_OPTIONS, *RUN_OPTIONS)})
        else:
            from .cmsr import config_for

            config_for(**{k: v for k, v in options.items() if k not in COMMON_OPTIONS})
        if options.get("device") is not None:
            from .fit import resolve_device

            resolve_device(options["device"])
        return
    from . import baselines

    _check_baseline_options({"bicubic": baselines.bicubic, "guided": baselines.guided_filter,
                             "regression": baselines.regression}[name], options)
    if name == "guided":
        try:
            from cv2 import ximgproc  # noqa: F401
        except ImportError:
            raise InputError("method 'guided' needs OpenCV's contrib modules, which are not installed: "
                             "pip install 'geosr[guided]' (opencv-contrib-python-headless)") from None


METHODS = {"mmsr": _mmsr, "cmsr": _cmsr, "bicubic": _bicubic, "guided": _guided, "regression": _regression}


def get_method(name: str):
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown method {name!r}; choose one of {sorted(METHODS)}") from None
