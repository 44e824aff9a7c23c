"""Export fitted estimators to ONNX, to serve them without torch or skrec.

The export needs onnx and onnxscript, and running the model an ONNX runtime
such as onnxruntime (``pip install "skrec[onnx]"`` installs the three);
``import skrec`` does not import them.
"""

from ._export import to_onnx

__all__ = ["to_onnx"]
