"""Embedding beyond one machine: Ray Data spreads reading, decoding and inference over a
cluster; results are written into the same store, through the same path as a local ingest.

Ray is optional (``pip install 'clipatlas[distributed]'``) and imported only when a run starts.
"""

from clipatlas.distributed.ray_embed import embed_with_ray

__all__ = ["embed_with_ray"]
