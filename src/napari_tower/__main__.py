"""``python -m napari_tower`` = the ``napari-tower`` command."""
from .cli import main

raise SystemExit(main())
