"""The plugin: it adds the geosr Processing provider, in QGIS and in qgis_process alike.

qgis_process (headless) passes no interface and calls only :meth:`initProcessing`; QGIS desktop calls
:meth:`initGui`. Nothing here touches ``iface``: the provider is all the plugin adds.
"""
from qgis.core import QgsApplication


class GeosrPlugin:
    def __init__(self, iface=None):
        self.provider = None

    def initProcessing(self):
        if self.provider is None:
            from .provider import GeosrProvider

            self.provider = GeosrProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
