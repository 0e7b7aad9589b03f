"""Block-wise segmentation of images of any size.

The volume is cut into a grid of blocks; each block is read with a halo of context,
segmented by ``predict.segment.segment_iter`` exactly like a whole image, cropped to its
interior and given ids unique in the whole output; objects that meet across block faces
are then merged (face adjacency + connected components). Blocks run one after another in
this process, or as tasks on a ``dask.distributed`` cluster. Nothing here imports Qt.
"""
from .grid import Block, block_grid
from .stitch import face_pairs, merge_mapping

__all__ = ["Block", "block_grid", "face_pairs", "merge_mapping"]
