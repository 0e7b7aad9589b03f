"""Entry point of a pretraining data worker (``ssl.batches.BatchPool``); not imported by the package."""
from napari_tower.ssl.batches import serve

if __name__ == "__main__":
    serve()
