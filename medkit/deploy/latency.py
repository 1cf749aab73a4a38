"""Time the same model in PyTorch (eager) and in ONNX Runtime: median milliseconds per batch."""


import torch

from ..base.errors import DataError
from ..base.timing import median_seconds
from ..models import Preprocess
from .onnx import ExportWrapper, OnnxPredictor

__all__ = ["measure_latency"]


def measure_latency(model, onnx_path, images, *, batch_sizes=(1, 32), repeats: int = 20, warmup: int = 3,
                    threads: int = 1) -> list[dict]:
    """Return one row per batch size: median ms per batch for PyTorch eager and ONNX Runtime, and their ratio.

    Both run on `threads` CPU threads (1 by default: a fair, quiet comparison on a shared machine), on
    the same real uint8 images, with the same in-graph preprocessing.
    """
    predictor = OnnxPredictor(onnx_path, threads=threads)
    images = predictor.check_batch(images)
    if repeats < 1 or max(batch_sizes) > len(images):
        raise DataError(f"Need repeats >= 1 and at least {max(batch_sizes)} images for batch sizes {batch_sizes}; "
                        f"got repeats={repeats} and {len(images)} images.")
    meta = predictor.meta
    wrapper = ExportWrapper(model.cpu().eval(), Preprocess(meta["image_size"], meta["mean"], meta["std"])).eval()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = []
    try:
        for bs in batch_sizes:
            x = images[:bs]
            xt = torch.from_numpy(x)

            def eager(xt=xt):
                with torch.inference_mode():
                    wrapper(xt)

            torch_ms = 1000.0 * median_seconds(eager, repeats, warmup)
            onnx_ms = 1000.0 * median_seconds(lambda x=x: predictor.run(x), repeats, warmup)
            rows.append({"batch": bs, "torch_ms": torch_ms, "onnx_ms": onnx_ms, "speedup": torch_ms / onnx_ms,
                         "torch_img_per_s": 1000.0 * bs / torch_ms, "onnx_img_per_s": 1000.0 * bs / onnx_ms})
    finally:
        torch.set_num_threads(previous)
    return rows
