"""Keras 3 (TensorFlow backend) in-step probe: statistics computed inside the training step.

Every Keras training loop ends a step in ``optimizer.apply`` (``fit``, ``train_on_batch``, and
custom loops with ``tf.GradientTape`` + ``apply_gradients``, eager or inside ``tf.function``),
and every loop computes its gradients with ``GradientTape.gradient``. ``install`` wraps those
two: the wrapper of ``gradient`` remembers the loss (the scalar target) and, for layers whose
activation the callback wrapped, also asks for the gradient of their pre-activation outputs
(gout); the wrapper of ``apply`` reads each kernel before and after the update and reduces
the kernels, their updates and gradients and the captured activations with a fixed number of
ops (``tf_rows``, one concatenation and segment reductions) into one [rows, RAW] tensor, in
the same graph as the step. Inside a ``tf.function`` the rows leave the graph through one
``tf.numpy_function`` per step; eagerly they stay tensors until the batch is read back.

A ``ConvlintCallback`` that owns the step (``fit``, ``train_on_batch``) takes the rows and
records them with the logs' loss and metrics; otherwise (a custom loop) the probe records the
step itself with the loss it saw. Under XLA (``jit_compile=True``) no host call can run in the
step: the probe stays out of the way and the callback records eagerly as before.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

from . import fused
from .record import RAW, Recorder, StopTraining


def tf_rows(tensors: list, acts: list):
    """One row of RAW columns per tensor (see ``fused.torch_rows``), in TensorFlow ops inside
    the step: plain per-tensor reductions (measured faster on CPU than one concatenation
    reduced with ``unsorted_segment_*``, which made a small CNN's step 6x slower)."""
    import tensorflow as tf

    f32 = tf.float32
    rows = []
    for t, a in zip(tensors, acts, strict=True):
        x = tf.cast(t, f32)
        bad = tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(x)), f32))
        sat_s = (
            tf.reduce_sum(tf.cast((x < 0.01) | (x > 0.99), f32))
            if a == "sigmoid"
            else tf.constant(-1.0)
        )
        sat_t = tf.reduce_sum(tf.cast(tf.abs(x) > 0.99, f32)) if a == "tanh" else tf.constant(-1.0)
        if a in ("relu", "leaky_relu") and len(t.shape) >= 2:  # a unit is dead when never positive
            alive = tf.reduce_max(tf.reshape(x, [-1, t.shape[-1]]), 0) > 0
            dead = 1.0 - tf.reduce_mean(tf.cast(alive, f32))
        else:
            dead = tf.constant(-1.0)
        rows.append(
            tf.stack(
                [
                    tf.cast(tf.size(x), f32),
                    bad,
                    tf.reduce_sum(x),
                    tf.reduce_sum(x * x),
                    tf.cast(tf.math.count_nonzero(x), f32),
                    sat_s,
                    sat_t,
                    tf.reduce_min(x),
                    tf.reduce_max(x),
                    dead,
                ]
            )
        )
    return tf.stack(rows)


def _readback(values: list) -> list:
    import numpy as np

    out = []
    for v in values:
        if v is None or isinstance(v, (int, float)):
            out.append(v)
        else:
            a = np.asarray(v)
            out.append(a.tolist() if a.ndim else float(a))
    return out


class KerasStepProbe:
    """The wrappers' state: see the module docstring."""

    def __init__(self, rec: Recorder, flush_every: int = 32):
        self.rec = rec
        self.buffer = fused.StepBuffer(rec, _readback, size=flush_every)
        # the ConvlintCallback recording the current fit/train_on_batch, if any
        self.owner: Any = None
        # layer -> {"pre", "post", "act"} while a callback wraps layers
        self.capture: dict | None = None
        self.gouts: dict = {}
        self.target = None  # the loss of the last tape.gradient call
        self.pending: tuple | None = None  # (sig, rows) of the owner's last step
        self.layers: weakref.WeakSet = weakref.WeakSet()  # every Layer built (for custom loops)
        self.declared: set = set()
        self.xla = False
        self.custom = False  # record custom loops (train-check); else only an owner's steps

    # -- GradientTape.gradient --------------------------------------------------------------------
    def gradient(self, orig, tape, target, sources, *a, **k):
        import tensorflow as tf

        if not (isinstance(target, tf.Tensor) and target.shape.rank == 0):
            return orig(tape, target, sources, *a, **k)
        self.target = target
        extra = [(n, d["pre"]) for n, d in (self.capture or {}).items() if d.get("pre") is not None]
        if not extra or a or k:
            return orig(tape, target, sources, *a, **k)
        try:
            grads, g_extra = orig(tape, target, [sources, [t for _, t in extra]])
        except Exception:  # a tensor we cannot differentiate against: the weights' gradients only
            return orig(tape, target, sources)
        self.gouts = {n: g for (n, _), g in zip(extra, g_extra, strict=True) if g is not None}
        return grads

    # -- optimizer.apply --------------------------------------------------------------------------
    def apply(self, orig, opt, grads, variables=None):
        import tensorflow as tf

        vs = (
            list(variables)
            if variables is not None
            else list(getattr(opt, "_trainable_variables", []) or [])
        )
        grads = list(grads)
        if self.xla or not vs or len(vs) != len(grads) or self.owner is None and not self.custom:
            return orig(opt, grads, variables)
        if self.owner is None:
            self._declare(vs, opt)
        kernels = [(i, v) for i, v in enumerate(vs) if len(v.shape) >= 2 and _layer_name(v)]
        before = [tf.identity(v.value) for _, v in kernels]
        out = orig(opt, grads, variables)
        tensors, sig = [], []
        first = self.rec.step == 0
        for (i, v), b in zip(kernels, before, strict=True):
            name = _layer_name(v)
            after = tf.identity(v.value)
            if first:
                tensors.append(b)
                sig.append((name, "winit", None))
            tensors += [after, after - b]
            sig += [(name, "w", None), (name, "dw", None)]
            if grads[i] is not None:
                tensors.append(tf.convert_to_tensor(grads[i]))
                sig.append((name, "gw", None))
        for n, d in (self.capture or {}).items():
            for kind in ("pre", "post"):
                if d.get(kind) is not None and (
                    kind == "pre" or d.get("act") not in (None, "linear")
                ):
                    tensors.append(d[kind])
                    sig.append((n, kind, d.get("act") if kind == "post" else None))
            if n in self.gouts:
                tensors.append(self.gouts[n])
                sig.append((n, "gout", None))
        self.capture = {} if self.capture is not None else None
        self.gouts = {}
        if not tensors:
            return out
        rows = tf_rows(tensors, [s[2] for s in sig])
        loss = self.target if self.target is not None and _same_graph(self.target, rows) else None
        self.target = None
        if tf.executing_eagerly():
            self._host(sig, rows, loss)
        else:
            ins = [rows] if loss is None else [rows, tf.cast(loss, tf.float32)]
            tf.numpy_function(
                lambda *r, sig=sig: self._host(sig, *r) or 0,
                ins,
                tf.int64,
                stateful=True,
                name="convlint_probe",
            )
        return out

    def _host(self, sig, rows, loss=None) -> None:
        """A step's rows reached the host (or, eagerly, are ready): the owner records them, else
        the probe records the step (a custom loop), stopping it on a certain fault."""
        if self.owner is not None:
            self.pending = (sig, rows)
            return
        if not self.custom:  # a step traced for a callback that has finished: nothing records it
            return
        step = self.rec.step
        stop = self.rec.count_step()
        reason = self.buffer.push(step, None, sig, rows, loss)
        if reason or stop:
            self.buffer.flush()
            raise StopTraining(str(reason or stop))

    def _declare(self, vs: list, opt) -> None:
        """A custom loop: declare the layers whose kernels the optimizer trains (forward order)."""
        ids = {id(v) for v in vs}
        if frozenset(ids) in self.declared:
            return
        self.declared.add(frozenset(ids))
        from .probe_keras import _act_name

        owners = [
            la
            for la in list(self.layers)
            if la.trainable_weights
            and not getattr(la, "layers", None)
            and any(id(w) in ids for w in la.trainable_weights)
        ]
        order = {id(v): i for i, v in enumerate(vs)}
        owners.sort(key=lambda la: min(order.get(id(w), 1 << 30) for w in la.trainable_weights))
        if owners and "framework" not in self.rec.meta:
            import tensorflow as tf

            # no callback wraps the layers' activations in a custom loop: say so, so that a
            # non-finite loss is not blamed on the loss computation for want of forward evidence
            meta: dict = {
                "framework": "keras",
                "loop": "custom",
                "optimizer": type(opt).__name__,
                "forward_recorded": False,
            }
            try:
                with tf.init_scope():  # read eagerly, even while a tf.function is traced
                    meta["learning_rate"] = float(opt.learning_rate.numpy())
                    meta["optimizer_config"] = {
                        k: v
                        for k, v in opt.get_config().items()
                        if isinstance(v, (int, float, str, bool))
                    }
            except Exception:
                pass
            self.rec.set_meta(**meta)
        for la in owners:
            k = la.trainable_weights[0]
            fan_in = (
                int(k.shape[0])
                if len(k.shape) == 2
                else (int(k.shape[0] * k.shape[1] * k.shape[2]) if len(k.shape) == 4 else None)
            )
            site = getattr(la, "_convlint_site", None) or {}
            self.rec.layer(
                la.name,
                type=type(la).__name__,
                activation=_act_name(getattr(la, "activation", None)),
                file=site.get("file"),
                line=site.get("line"),
                params=int(sum(math.prod(v.shape) for v in la.weights)),
                fan_in=fan_in,
            )


def _layer_name(v) -> str | None:
    """The layer a Keras 3 variable belongs to, from its path (``model/dense_1/kernel``)."""
    path = getattr(v, "path", None) or ""
    parts = path.split("/")
    return parts[-2] if len(parts) >= 2 else None


def _same_graph(a, b) -> bool:
    return getattr(a, "graph", None) is getattr(b, "graph", None)


PROBE: KerasStepProbe | None = None


def install(rec: Recorder) -> KerasStepProbe:
    """Wrap ``GradientTape.gradient`` and the Keras optimizer's ``apply`` (once per process)."""
    global PROBE
    import tensorflow as tf
    from keras.src.optimizers.base_optimizer import BaseOptimizer

    if PROBE is not None:
        return PROBE
    probe = PROBE = KerasStepProbe(rec)
    orig_gradient = tf.GradientTape.gradient

    def gradient(self, target, sources, *a, **k):
        return probe.gradient(orig_gradient, self, target, sources, *a, **k)

    tf.GradientTape.gradient = gradient
    orig_apply = BaseOptimizer.apply

    def apply(self, grads, trainable_variables=None):
        return probe.apply(orig_apply, self, grads, trainable_variables)

    BaseOptimizer.apply = apply
    return probe


__all__ = ["RAW", "KerasStepProbe", "install", "tf_rows"]
