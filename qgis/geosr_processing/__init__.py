"""geosr's QGIS Processing provider (geosr:upsample); QGIS loads it through :func:`classFactory`."""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    from .plugin import GeosrPlugin

    return GeosrPlugin(iface)
