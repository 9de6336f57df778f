"""geosr's own exception."""


class InputError(ValueError):
    """The source, guide, scale or an option cannot be used as given; the message says how to fix it."""
