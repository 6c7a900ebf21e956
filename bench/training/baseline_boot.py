"""Runs a benchmark program under one baseline detector and prints {"detected", "how"} as JSON.

    python baseline_boot.py MODE SCRIPT

MODE: ``keras_callbacks`` (keras.callbacks.TerminateOnNaN and EarlyStopping added to every
fit; reported separately), ``check_numerics`` (tf.debugging.enable_check_numerics),
``detect_anomaly`` (torch.autograd.set_detect_anomaly). The program runs unmodified otherwise.
"""

import json
import math
import os
import sys

mode, script = sys.argv[1], os.path.abspath(sys.argv[2])
result = {
    "terminate_on_nan": False,
    "early_stopping": False,
    "check_numerics": False,
    "detect_anomaly": False,
    "error": None,
}

if mode == "keras_callbacks":
    import keras

    orig_fit = keras.Model.fit

    def fit(self, *a, **k):
        ton = keras.callbacks.TerminateOnNaN()
        es = keras.callbacks.EarlyStopping(monitor="loss", patience=2, min_delta=1e-4)
        k["callbacks"] = [*(k.get("callbacks") or []), ton, es]
        h = orig_fit(self, *a, **k)
        losses = h.history.get("loss", [])
        if (
            any(not math.isfinite(x) for x in losses)
            or self.stop_training
            and losses
            and not math.isfinite(losses[-1])
        ):
            result["terminate_on_nan"] = True
        if es.stopped_epoch > 0:
            result["early_stopping"] = True
        return h

    keras.Model.fit = fit
elif mode == "check_numerics":
    import tensorflow as tf

    tf.debugging.enable_check_numerics()
elif mode == "detect_anomaly":
    import torch

    torch.autograd.set_detect_anomaly(True)

sys.argv = [script]
sys.path[0] = os.path.dirname(script)
try:
    with open(script) as fh:
        exec(compile(fh.read(), script, "exec"), {"__name__": "__main__", "__file__": script})
except BaseException as e:  # noqa: BLE001 - the detectors report by raising
    msg = f"{type(e).__name__}: {e}"
    result["error"] = msg[:300]
    if mode == "check_numerics" and ("NaN" in msg or "Inf" in msg or "CheckNumerics" in msg):
        result["check_numerics"] = True
    if mode == "detect_anomaly" and ("nan" in msg.lower() or "anomaly" in msg.lower()):
        result["detect_anomaly"] = True
print("BASELINE " + json.dumps(result))
