"""The package version, importable from any layer (the package's ``__init__`` imports the
whole API, so modules below it must not take ``__version__`` from there)."""
try:
    from ._version import version as __version__
except ImportError:  # running from a source tree that was never built
    __version__ = "0.0.0+unknown"
