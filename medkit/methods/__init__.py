"""A lesson's method, one module each, independent of one another (lessons 01-03, 05, 08-10, 12).

ssl and vit (08), federated (09), transfer (10), leakage (01-02), nih (05's NIH section), learner (03's fastai
Learner), second_site (12). The packaged methods (cam, segmentation, volumes, deploy) sit beside this one on the
same floor. What two methods share moves down to `medkit.core`. Submodules load on first use.
"""

from ..base import lazy_submodules

__getattr__ = lazy_submodules(__name__)
