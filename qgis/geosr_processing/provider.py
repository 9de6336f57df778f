"""The geosr Processing provider: its algorithm, and the setting that says where the geosr command is."""
import os
import shutil

from qgis.core import QgsProcessingProvider

from .algorithm import UpsampleAlgorithm

CLI_SETTING = "GEOSR_CLI"


def default_cli() -> str:
    """$GEOSR_CLI, else geosr on QGIS's PATH, else ~/.local/bin/geosr (pip install --user), else plain "geosr"."""
    if os.environ.get(CLI_SETTING):
        return os.environ[CLI_SETTING]
    found = shutil.which("geosr")
    if found:
        return found
    user = os.path.expanduser(os.path.join("~", ".local", "bin", "geosr"))
    return user if os.path.exists(user) else "geosr"


def cli_path() -> str:
    """The geosr command the algorithm runs: the provider's setting (bash qgis/install.sh sets it), else the default."""
    from processing.core.ProcessingConfig import ProcessingConfig

    value = ProcessingConfig.getSetting(CLI_SETTING)
    return str(value).strip() if value else default_cli()


class GeosrProvider(QgsProcessingProvider):
    def id(self):
        return "geosr"

    def name(self):
        return "geosr"

    def longName(self):
        return "geosr: guided super-resolution"

    def load(self):
        from processing.core.ProcessingConfig import ProcessingConfig, Setting

        ProcessingConfig.settingIcons[self.name()] = self.icon()
        ProcessingConfig.addSetting(Setting(self.name(), CLI_SETTING, "Path to the geosr command (geosr upsample)",
                                            default_cli(), valuetype=Setting.FILE))
        ProcessingConfig.readSettings()
        self.refreshAlgorithms()
        return True

    def unload(self):
        from processing.core.ProcessingConfig import ProcessingConfig

        ProcessingConfig.removeSetting(CLI_SETTING)

    def loadAlgorithms(self):
        self.addAlgorithm(UpsampleAlgorithm())

    def supportedOutputRasterLayerExtensions(self):
        return ["tif"]
