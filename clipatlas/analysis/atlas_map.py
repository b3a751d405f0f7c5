"""The atlas map: a 2-D layout of a collection's vectors and its renderings.

Library API (plain arrays in, no database access; clustering runs store the results):

* :func:`layout` -- PCA (to 50) then UMAP to 2-D, sample + transform (or k-NN placement)
  for large N, tiny-N fallbacks; see :mod:`clipatlas.analysis.map_layout`.
* :func:`render_html` -- self-contained offline plotly page, thumbnails on hover;
  :func:`render_png` -- static scatter for reports; see :mod:`clipatlas.analysis.map_render`.
"""

from __future__ import annotations

from clipatlas.analysis.map_layout import MapLayout, Placement, layout
from clipatlas.analysis.map_render import HtmlMap, render_html, render_png

__all__ = ["HtmlMap", "MapLayout", "Placement", "layout", "render_html", "render_png"]
