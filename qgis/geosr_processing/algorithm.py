"""geosr:upsample, the Processing algorithm: ``geosr upsample`` run in a child process on the chosen layers."""
import os
import shlex

from qgis.core import (QgsProcessing, QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingParameterBand,
                       QgsProcessingParameterBoolean, QgsProcessingParameterDefinition,
                       QgsProcessingParameterEnum, QgsProcessingParameterMultipleLayers,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination,
                       QgsProcessingParameterRasterLayer, QgsProcessingParameterString)

from . import command

# The choices of geosr's own options, in its spellings (tests/test_qgis.py checks them against geosr).
METHODS = ["mmsr", "cmsr", "bicubic", "guided", "regression"]
MODES = ["auto", "tile", "scene", "hybrid"]
PRESETS = ["fast", "depth", "remote-sensing", "wide"]
PSFS = ["area", "gaussian", "point", "auto"]
ALIGNMENTS = ["shift", "affine", "none"]


class UpsampleAlgorithm(QgsProcessingAlgorithm):
    def name(self):
        return "upsample"

    def displayName(self):
        return "Super-resolve a raster with a guide (geosr upsample)"

    def group(self):
        return ""

    def groupId(self):
        return ""

    def shortHelpString(self):
        return ("Sharpens a low-resolution raster (a DEM, a thermal or SWIR band) with a high-resolution image "
                "of another kind as the guide (an orthophoto, a multispectral image), by MMSR: a small network "
                "fitted on this pair alone. The output is the source's grid refined by the scale, in the source's "
                "CRS, with its nodata. Layers may be in any CRS, resolution and extent.\n\n"
                "It runs the geosr command (Settings > Options > Processing > Providers > geosr says which) in a "
                "process of its own; cancelling stops it and leaves no output. Every guided run first checks the "
                "method one scale down on this pair and logs how it compares with bicubic.")

    def createInstance(self):
        return UpsampleAlgorithm()

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("SOURCE", "Low-resolution source (DEM, thermal band)"))
        self.addParameter(QgsProcessingParameterMultipleLayers("GUIDE", "High-resolution guide layer(s), stacked "
                                                               "as bands", QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterNumber("SCALE", "Scale (output pixel = source pixel / scale; empty: "
                                                       "from the layers' pixel sizes)",
                                                       QgsProcessingParameterNumber.Integer, optional=True,
                                                       minValue=2))
        self.addParameter(QgsProcessingParameterBand("BAND", "Source band (required if it has several)",
                                                     parentLayerParameterName="SOURCE", optional=True))
        self._enum("METHOD", "Method", METHODS, "mmsr")
        self._enum("MODE", "MMSR mode (tile: a network per tile; scene: one for the raster; auto: tile for one "
                   "tile, scene for more)", MODES, "auto")
        self.addParameter(QgsProcessingParameterBoolean("OVERWRITE", "Replace the output if it exists", False))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Super-resolved raster"))
        self.addParameter(QgsProcessingParameterRasterDestination("QUALITY", "Quality layers (fallback, cycle "
                                                                  "residual, guide influence)", optional=True,
                                                                  createByDefault=False))
        advanced = [
            self._enum("PRESET", "MMSR preset (empty: geosr's default)", PRESETS, None, add=False),
            QgsProcessingParameterNumber("EPOCHS", "Epochs of each tile's fit (empty: the preset's)",
                                         QgsProcessingParameterNumber.Integer, optional=True, minValue=0),
            QgsProcessingParameterNumber("SEED", "Seed", QgsProcessingParameterNumber.Integer, 0, minValue=0),
            QgsProcessingParameterString("DEVICE", "torch device, e.g. cpu, cuda (empty: CUDA if available)",
                                         optional=True),
            self._enum("ALIGN", "Remove the guide's displacement before the fit", ALIGNMENTS, "shift", add=False),
            self._enum("PSF", "Sensor model", PSFS, "area", add=False),
            QgsProcessingParameterBoolean("EXACT", "Keep every source cell's mean (back-projection)", True),
            QgsProcessingParameterBoolean("SELFCHECK", "Check the method one scale down first", True),
            QgsProcessingParameterString("FLAT_MASK", "Flat mask: a slope in degrees, or a raster or vector file "
                                         "(bicubic there)", optional=True),
            QgsProcessingParameterBoolean("COG", "Write a Cloud Optimized GeoTIFF", False),
            QgsProcessingParameterString("EXTRA", "More geosr upsample options, as on its command line (e.g. "
                                         "--tile-size 64 --threads 4)", optional=True),
        ]
        for p in advanced:
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(p)

    def _enum(self, name, description, options, default, add=True):
        p = QgsProcessingParameterEnum(name, description, options=options, defaultValue=default,
                                       optional=default is None, usesStaticStrings=True)
        if add:
            self.addParameter(p)
        return p

    def processAlgorithm(self, parameters, context, feedback):
        from .provider import cli_path

        args = [cli_path(), "upsample", self._source_file(parameters, context)]
        args += self._guide_files(parameters, context)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        if os.path.splitext(output)[1].lower() not in (".tif", ".tiff"):
            raise QgsProcessingException(f"geosr writes GeoTIFF: give the output a .tif name, not {output}")
        args += ["-o", output, "--on-interrupt", "discard"]
        args += self._options(parameters, context)
        quality = None
        if parameters.get("QUALITY") not in (None, ""):
            quality = self.parameterAsOutputLayer(parameters, "QUALITY", context)
            args += ["--quality", quality]
        feedback.pushCommandInfo(" ".join(shlex.quote(a) for a in args))
        progress = command.Progress()

        def on_line(line):
            read = progress.read(line)
            if read is None:
                feedback.pushInfo(line)
            else:
                feedback.setProgress(read[0])
                feedback.setProgressText(read[1])

        try:
            status, cancelled, lines = command.run(args, on_line, feedback.isCanceled)
        except OSError as e:
            raise QgsProcessingException(f"could not run {args[0]}: {e}. Set the path of the geosr command in "
                                         "Settings > Options > Processing > Providers > geosr") from None
        if cancelled:  # an error, so QGIS does not look for the output it would otherwise load
            raise QgsProcessingException("cancelled: geosr stopped, and nothing was written")
        if status != 0:
            message = command.error_of(lines)
            if "--overwrite" in message:
                message += " (here: check 'Replace the output if it exists', OVERWRITE=true)"
            raise QgsProcessingException(f"geosr upsample failed: {message}")
        return {"OUTPUT": output, **({"QUALITY": quality} if quality else {})}

    def _source_file(self, parameters, context):
        return self._layer_file(self.parameterAsRasterLayer(parameters, "SOURCE", context), "source")

    def _guide_files(self, parameters, context):
        guides = self.parameterAsLayerList(parameters, "GUIDE", context)
        if not guides:
            raise QgsProcessingException("give at least one guide layer")
        return [self._layer_file(g, "guide") for g in guides]

    @staticmethod
    def _layer_file(layer, role):
        if layer is None:
            raise QgsProcessingException(f"the {role} is not a raster layer QGIS can open")
        if layer.providerType() != "gdal":
            raise QgsProcessingException(f"the {role} layer {layer.name()} is not a file GDAL reads (it comes from "
                                         f"{layer.providerType()}): save it as a GeoTIFF first (Raster > Conversion "
                                         "> Translate) and give that")
        return layer.source()

    def _options(self, parameters, context):
        """geosr's flags for the parameters set away from geosr's defaults (it refuses flags its method ignores)."""
        args = []
        scale = parameters.get("SCALE")
        if scale not in (None, ""):
            args += ["--scale", str(self.parameterAsInt(parameters, "SCALE", context))]
        band = parameters.get("BAND")
        if band not in (None, "", 0, "0"):
            args += ["--band", str(self.parameterAsInt(parameters, "BAND", context))]
        for name, flag, default in (("METHOD", "--method", "mmsr"), ("MODE", "--mode", "auto"),
                                    ("PRESET", "--preset", None), ("ALIGN", "--align", "shift"),
                                    ("PSF", "--psf", "area")):
            value = self.parameterAsEnumString(parameters, name, context)
            if value and value != default:
                args += [flag, value]
        if parameters.get("EPOCHS") not in (None, ""):
            args += ["--epochs", str(self.parameterAsInt(parameters, "EPOCHS", context))]
        seed = self.parameterAsInt(parameters, "SEED", context)
        if seed:
            args += ["--seed", str(seed)]
        for name, flag in (("DEVICE", "--device"), ("FLAT_MASK", "--flat-mask")):
            value = self.parameterAsString(parameters, name, context).strip()
            if value:
                args += [flag, value]
        if not self.parameterAsBoolean(parameters, "EXACT", context):
            args.append("--no-exact")
        if not self.parameterAsBoolean(parameters, "SELFCHECK", context):
            args.append("--no-selfcheck")
        for name, flag in (("COG", "--cog"), ("OVERWRITE", "--overwrite")):
            if self.parameterAsBoolean(parameters, name, context):
                args.append(flag)
        extra = self.parameterAsString(parameters, "EXTRA", context).strip()
        if extra:
            try:
                args += shlex.split(extra)
            except ValueError as e:
                raise QgsProcessingException(f"the extra options are not a command line ({e}): quote paths with "
                                             "spaces") from None
        return args
