"""Keras 3 probe: a callback that records each layer's output before and after its activation,
its weights, its update (ΔW) and gradients, with the loss and metrics.

Public API (the user adds it)::

    from convlint.analyzers.training import ConvlintCallback
    cb = ConvlintCallback(probe_data=(x[:64], y[:64]))
    model.fit(x, y, callbacks=[cb])
    report = cb.report()

On a recorded batch it snapshots the weights before the batch (ΔW is the real update of that
step), then runs one eager forward and backward pass on a fixed probe batch in training mode,
with each layer's activation wrapped to see its input (pre) and output (post), and restores
every non-trainable variable (BatchNormalization statistics) afterwards, so probing changes
nothing the model learns. ``convlint train-check`` patches ``Model.fit`` to add this callback
with a probe batch from the fit data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from .record import Recorder, StopTraining, creation_site

if TYPE_CHECKING:  # for casts only: numpy is imported where it is used
    import numpy as np

    from . import fused, probe_keras_step

ACT_LAYERS = {"Activation", "ReLU", "LeakyReLU", "Softmax", "ELU", "PReLU"}


def nstats(a, act: str | None = None, channel_axis: int = -1) -> dict | None:
    """Summary statistics of an array-like (a small probe batch; computed with numpy)."""
    import numpy as np

    try:
        x = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if x.size == 0:
        return None
    fin = np.isfinite(x)
    nbad = int(x.size - fin.sum())
    g = x[fin] if nbad else x.reshape(-1)
    if g.size == 0:
        return {"n": int(x.size), "frac_nonfinite": 1.0}
    d = {"n": int(x.size), "mean": float(g.mean()), "std": float(g.std()), "min": float(g.min()),
         "max": float(g.max()), "absmax": float(np.abs(g).max()), "norm": float(np.linalg.norm(g)),
         "frac_zero": float((g == 0).mean()), "frac_nonfinite": nbad / x.size}
    if act == "sigmoid":
        d["frac_sat"] = float(((g < 0.01) | (g > 0.99)).mean())
    elif act == "tanh":
        d["frac_sat"] = float((np.abs(g) > 0.99).mean())
    elif act in ("relu", "leaky_relu") and x.ndim >= 2:
        alive = (np.nan_to_num(x) > 0).reshape(-1, x.shape[channel_axis]).any(axis=0)
        d["frac_dead"] = float(1.0 - alive.mean())
    return d


def _metrics(logs: dict) -> dict:
    """The logs' metrics, with ``accuracy`` under that name whatever the metric was called."""
    metrics = {k: v for k, v in logs.items() if k != "loss"}
    if "accuracy" not in metrics:
        for k in list(metrics):
            if k.endswith("accuracy"):
                metrics["accuracy"] = metrics[k]
                break
    return metrics


def _act_name(fn) -> str | None:
    if fn is None:
        return None
    n = getattr(fn, "__name__", None) or type(fn).__name__
    return {"relu6": "relu", "hard_sigmoid": "sigmoid"}.get(n.lower(), n.lower())


def _loss_meta(model) -> dict:
    """The compiled loss: its name and from_logits (a string, a function or a Loss object)."""
    loss = getattr(model, "loss", None)
    if isinstance(loss, (list, tuple)) and loss:
        loss = loss[0]
    if isinstance(loss, dict) and loss:
        loss = next(iter(loss.values()))
    if isinstance(loss, str):
        return {"loss": loss, "from_logits": False}
    if loss is None:
        return {"loss": None, "from_logits": None}
    cfg = {}
    try:
        get_config = getattr(loss, "get_config", None)
        cfg = get_config() if get_config is not None else {}
    except Exception:
        pass
    name = getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__
    fn = getattr(loss, "fn", None)
    if fn is not None:
        name = getattr(fn, "__name__", name)
    return {"loss": str(name), "from_logits": cfg.get("from_logits", False) if cfg else None}


def _labels_meta(y, out_units: int | None) -> dict:
    import numpy as np

    try:
        y = np.asarray(y)
    except Exception:
        return {}
    if y.size == 0 or not np.issubdtype(y.dtype, np.number):
        return {}
    yf = y.astype(np.float64)
    d: dict = {"label_min": float(yf.min()), "label_max": float(yf.max())}
    integral = bool(np.all(yf == np.round(yf)))
    if (
        yf.ndim >= 2
        and yf.shape[-1] > 1
        and np.all((yf == 0) | (yf == 1))
        and np.all(yf.sum(-1) == 1)
    ):
        d.update(labels="onehot", num_classes=int(yf.shape[-1]))
    elif integral and yf.min() >= 0 and (yf.ndim == 1 or yf.shape[-1] == 1):
        k = int(yf.max()) + 1
        d.update(
            labels="binary" if k <= 2 and (out_units in (None, 1)) else "index",
            num_classes=max(k, 2),
        )
    else:
        d["labels"] = "real"
    return d


def _label_extra(y) -> dict:
    """What the root-cause rules read besides ``_labels_meta``: the majority class's rate (what
    "not learning" is judged against), the targets' spread, whether they are whole numbers."""
    import numpy as np

    try:
        yf = np.asarray(y, dtype=np.float64)
    except Exception:
        return {}
    if yf.size == 0:
        return {}
    d: dict = {"label_std": float(yf.std()), "label_integral": bool(np.all(yf == np.round(yf))),
               "label_checked": True}
    if yf.ndim >= 2 and yf.shape[-1] > 1:
        ids = yf.argmax(-1).reshape(-1)
    elif d["label_integral"]:
        ids = yf.reshape(-1)
    else:
        return d
    _, counts = np.unique(ids, return_counts=True)
    d.update(majority_rate=float(counts.max() / counts.sum()), label_distinct=int(len(counts)))
    return d


def _structure_meta(layers: list) -> dict:
    """Layers with weights none of which is trainable (``trainable = False``)."""
    frozen = [la.name for la in layers if la.weights and not la.trainable_weights]
    return {"structure": {"frozen": frozen}} if frozen else {}


def _input_meta(x) -> dict:
    import numpy as np

    try:
        a = np.asarray(x, dtype=np.float64)
    except Exception:
        return {}
    if a.size == 0:
        return {}
    a = a[np.isfinite(a)]
    return {"input_min": float(a.min()), "input_max": float(a.max()), "input_mean": float(a.mean()),
            "input_std": float(a.std())} if a.size else {}


def _leaf_layers(model) -> list:
    out = []
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers and layer is not model:
            out += _leaf_layers(layer)
        else:
            out.append(layer)
    return out


def _make_callback_class():
    import keras

    class ConvlintCallback(keras.callbacks.Callback):
        """Records the training of the model it is attached to (see the module docstring)."""

        def __init__(self, probe_data=None, *, every: int | None = None, path: str | None = None,
                     recorder: Recorder | None = None, stop_on_fault: bool = False,
                     batch_size: int | None = None):
            super().__init__()
            self.rec = recorder or Recorder(path, every=every, stop_on_fault=stop_on_fault)
            self.probe_data = probe_data
            self.batch_size = batch_size
            self._epoch = 0
            self._before: list | None = None
            self._recording = False
            self._captured: dict = {}
            self._wrapped = False
            self._layer_of_var: dict = {}
            self._step = None  # the in-step probe (probe_keras_step), when the step can host it
            self._buffer = None

        # -- set-up -------------------------------------------------------------------------------
        def on_train_begin(self, logs=None):
            m = cast("keras.Model", self.model)  # keras types it "None | ..."; set by fit
            opt = m.optimizer
            lr = None
            try:
                lr = float(cast("np.ndarray", keras.ops.convert_to_numpy(opt.learning_rate)))
            except Exception:
                pass
            ocfg = {}
            try:
                ocfg = {
                    k: v
                    for k, v in opt.get_config().items()
                    if isinstance(v, (int, float, str, bool))
                }
            except Exception:
                pass
            layers = _leaf_layers(m)
            last = next((la for la in reversed(layers) if la.weights), None)
            out_units = None
            try:
                out_units = int(m.outputs[0].shape[-1])
            except Exception:
                pass
            meta = {
                "framework": "keras",
                "optimizer": type(opt).__name__,
                "learning_rate": lr,
                "optimizer_config": ocfg,
                "batch_size": self.batch_size,
                "output_units": out_units,
                **_loss_meta(m),
            }
            # the output activation: the last layer's own, or a trailing activation layer's
            out_act = None
            for la in reversed(layers):
                if type(la).__name__ in ACT_LAYERS or getattr(la, "activation", None) is not None:
                    out_act = (
                        _act_name(getattr(la, "activation", None))
                        if hasattr(la, "activation")
                        else type(la).__name__.lower()
                    )
                    if type(la).__name__ == "Softmax":
                        out_act = "softmax"
                    break
                if la is last:
                    break
            meta["output_activation"] = out_act
            if self.probe_data is not None:
                x, y = self.probe_data
                meta.update(_labels_meta(y, out_units))
                meta.update(_label_extra(y))
                meta.update(_input_meta(x))
            meta.update(_structure_meta(layers))
            self.rec.set_meta(**meta)
            try:
                params = self.params
                if params is not None:  # set by fit; without it, no plan
                    self.rec.plan(int(params.get("steps") or 0) * int(params.get("epochs") or 0))
            except (TypeError, ValueError, AttributeError):
                pass
            for la in layers:
                site = getattr(la, "_convlint_site", None) or {}
                kind = type(la).__name__
                if not la.weights and kind not in ACT_LAYERS:
                    continue
                if la.weights:
                    k = la.trainable_weights[0] if la.trainable_weights else None
                    fan_in = (
                        int(k.shape[0])
                        if k is not None and len(k.shape) == 2
                        else (
                            int(k.shape[0] * k.shape[1] * k.shape[2])
                            if k is not None and len(k.shape) == 4
                            else None
                        )
                    )
                    self.rec.layer(
                        la.name,
                        type=kind,
                        activation=_act_name(getattr(la, "activation", None)),
                        file=site.get("file"),
                        line=site.get("line"),
                        params=int(sum(int(v.numpy().size) for v in la.weights)),
                        fan_in=fan_in,
                    )
                    for v in la.trainable_weights:
                        self._layer_of_var[id(v)] = (la.name, v)
            self._wrap(layers)
            self._attach_step(m)

        def _attach_step(self, m) -> None:
            """Record inside the compiled training step (probe_keras_step) unless it runs under
            XLA, where no host call can; the step is traced again with the probe in it."""
            if getattr(m, "jit_compile", False) is True:
                return
            try:
                from . import fused, probe_keras_step
                from .probe_keras_step import _readback

                self._step = probe_keras_step.install(self.rec)
            except Exception:  # another Keras layout or backend: the eager probe pass below
                self._step = None
                return
            self._step.owner, self._step.capture, self._step.pending = self, {}, None
            if self._buffer is None:
                self._buffer = fused.StepBuffer(self.rec, _readback)
            if (
                m.__dict__.get("_convlint_step_fn") is None
                or m.__dict__["_convlint_step_fn"] is not m.train_function
            ):
                m.make_train_function(force=True)  # traced again, with the probe in the step
                object.__setattr__(m, "_convlint_step_fn", m.train_function)

        def _wrap(self, layers) -> None:
            """Wrap activations (pre/post) and activation layers (post of the layer before)."""
            if self._wrapped:
                return
            self._wrapped = True
            prev = None
            for la in layers:
                kind = type(la).__name__
                if la.weights and hasattr(la, "activation") and la.activation is not None:
                    la.activation = self._act_wrapper(
                        la.name, la.activation, _act_name(la.activation)
                    )
                    prev = la.name
                elif la.weights:
                    la.call = self._call_wrapper(la.name, la.call, "pre")
                    prev = la.name
                elif kind in ACT_LAYERS and prev is not None:
                    act = _act_name(getattr(la, "activation", None)) if kind == "Activation" else (
                        "relu" if kind == "ReLU" else kind.lower())
                    self.rec.layer(prev, activation=act, activation_module=la.name)
                    la.call = self._call_wrapper(prev, la.call, "post", act)

        def _sink(self) -> dict | None:
            """Where a wrapped activation puts what it saw: the step probe's capture while the
            training step is traced, the probe pass's dict while it runs, else nowhere."""
            st = self._step
            if st is not None and st.owner is self and st.capture is not None:
                return st.capture
            return self._captured if self._recording else None

        def _act_wrapper(self, name, fn, act):
            def wrapped(x, *a, **k):
                y = fn(x, *a, **k)
                sink = self._sink()
                if sink is not None:
                    sink[name] = {"pre": x, "post": y, "act": act}
                return y
            wrapped.__name__ = getattr(fn, "__name__", "activation")
            return wrapped

        def _call_wrapper(self, name, fn, kind, act=None):
            def wrapped(*a, **k):
                y = fn(*a, **k)
                sink = self._sink()
                if sink is not None:
                    d = sink.setdefault(name, {})
                    d[kind] = y
                    if act:
                        d["act"] = act
                return y
            return wrapped

        # -- per batch ----------------------------------------------------------------------------
        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            if self._step is not None:
                return
            if self.rec.wants():
                m = cast("keras.Model", self.model)
                self._before = [(id(v), v.numpy().copy()) for v in m.trainable_weights]

        def on_train_batch_end(self, batch, logs=None):
            logs = logs or {}
            if self._step is not None:
                return self._step_end(logs)
            if self._before is None:
                if self.rec.count_step():
                    cast("keras.Model", self.model).stop_training = True
                return
            self.rec.begin_step(self._epoch)
            for vid, before in self._before:
                own = self._layer_of_var.get(vid)
                # kernels only (biases are not the layer's W)
                if own is None or len(own[1].shape) < 2:
                    continue
                w = own[1].numpy()
                if self.rec.step == 0:  # the initial weights, before any update
                    self.rec.put(own[0], "winit", nstats(before))
                self.rec.put(own[0], "w", nstats(w))
                self.rec.put(own[0], "dw", nstats(w - before))
            self._before = None
            if self.probe_data is not None:
                try:
                    self._probe_pass(self.probe_data)
                except Exception as e:  # never break the user's training
                    self.rec.set_meta(probe_error=f"{type(e).__name__}: {e}"[:300])
            if self.rec.end_step(logs.get("loss"), _metrics(logs)):
                cast("keras.Model", self.model).stop_training = True

        def _step_end(self, logs: dict) -> None:
            """The step probe's rows of this step, with the logs' loss and metrics, into the
            buffer (read back every 32 steps; a certain fault stops the fit at the read-back)."""
            st = cast("probe_keras_step.KerasStepProbe", self._step)
            pending, st.pending = st.pending, None
            step = self.rec.step
            stop = self.rec.count_step()
            reason = None
            if pending is not None and self.rec.wants(step):
                reason = cast("fused.StepBuffer", self._buffer).push(
                    step, self._epoch, pending[0], pending[1], logs.get("loss"), _metrics(logs)
                )
            if reason or stop:
                cast("fused.StepBuffer", self._buffer).flush()
                cast("keras.Model", self.model).stop_training = True

        def _probe_pass(self, probe_data) -> None:
            import tensorflow as tf

            m = cast("keras.Model", self.model)
            x, y = probe_data
            keep = [v.numpy() for v in m.non_trainable_variables]
            self._captured = {}
            self._recording = True
            try:
                with tf.GradientTape() as tape:
                    y_pred = m(x, training=True)
                    # a tf.Tensor with this backend (keras's inferred return type is wider)
                    loss = cast("tf.Tensor", m.compute_loss(x=x, y=y, y_pred=y_pred, training=True))
            finally:
                self._recording = False
                for v, a in zip(m.non_trainable_variables, keep, strict=False):
                    v.assign(a)
            names = list(self._captured)
            targets = [self._captured[n].get("pre") for n in names]
            weights = [
                v for v in m.trainable_weights if id(v) in self._layer_of_var and len(v.shape) >= 2
            ]
            grads = tape.gradient(loss, [t for t in targets if t is not None] + weights)
            gi = iter(grads)
            for n, t in zip(names, targets, strict=True):
                d = self._captured[n]
                act = d.get("act")
                if t is not None:
                    self.rec.put(n, "pre", nstats(t))
                    g = next(gi)
                    if g is not None:
                        self.rec.put(n, "gout", nstats(g))
                if d.get("post") is not None and act not in (None, "linear"):
                    self.rec.put(n, "post", nstats(d["post"], act))
            for v in weights:
                g = next(gi)
                if g is not None:
                    self.rec.put(self._layer_of_var[id(v)][0], "gw", nstats(g))
            self.rec.set_meta(
                output_min=float(tf.reduce_min(y_pred)), output_max=float(tf.reduce_max(y_pred))
            )

        def on_train_end(self, logs=None):
            self.rec.set_meta(epochs_run=self._epoch + 1)
            if self._step is not None:
                if self._buffer is not None:
                    self._buffer.flush()
                self._step.owner, self._step.capture = None, None
                self._step = None
                m = cast("keras.Model", self.model)
                if self.probe_data is not None:  # the output's range, once
                    try:
                        import numpy as np

                        out = np.asarray(m(self.probe_data[0], training=False))
                        self.rec.set_meta(
                            output_min=float(np.nanmin(out)), output_max=float(np.nanmax(out))
                        )
                    except Exception:
                        pass

        def trace(self) -> dict:
            return self.rec.trace()

        def report(self, script: str = "<training>"):
            from ..training.rules import analyze

            return analyze(self.trace(), script)

    return ConvlintCallback


_CLASS = None


def callback_class():
    global _CLASS
    if _CLASS is None:
        _CLASS = _make_callback_class()
    return _CLASS


def _probe_batch(x, y, n: int = 64):
    """A fixed probe batch from fit's data: arrays, or the first batch of a dataset."""
    if y is None and x is not None and hasattr(x, "__iter__") and not hasattr(x, "shape"):
        try:
            first = next(iter(x))
            if isinstance(first, (tuple, list)) and len(first) >= 2:
                return first[0], first[1]
        except Exception:
            return None
        return None
    if x is None or y is None or not hasattr(x, "__getitem__"):
        return None
    k = min(n, len(x))
    return x[:k], y[:k]


def _pre_fit_labels(rec: Recorder, model, probe) -> None:
    """The labels against the loss and the output width before ``fit`` builds anything: Keras
    rejects some mismatches (one-hot labels with a sparse loss) before the first callback."""
    if probe is None:
        return
    try:
        units = int(model.outputs[0].shape[-1])
    except Exception:
        units = None
    try:
        rec.set_meta(
            framework="keras",
            **_loss_meta(model),
            output_units=units,
            **_labels_meta(probe[1], units),
            **_label_extra(probe[1]),
        )
    except Exception:  # the callback reads them again at on_train_begin
        pass


def install(rec: Recorder, script: str | None, max_epochs: int | None = None) -> None:
    """For ``train-check``: creation sites of layers, ``Model.fit`` with the probe callback (its
    epochs capped, the script stopped after it once training was stopped), and the lines of the
    fit call, the compile call (the loss) and the optimizer (the learning rate)."""
    import keras

    orig_init = keras.layers.Layer.__init__

    def init(self, *a, **k):
        site = creation_site(script)
        orig_init(self, *a, **k)
        try:
            object.__setattr__(self, "_convlint_site", site)
        except Exception:
            pass
        if step is not None:
            step.layers.add(self)

    keras.layers.Layer.__init__ = init
    try:  # custom loops (GradientTape + apply_gradients): recorded by the in-step probe
        from . import probe_keras_step

        step = probe_keras_step.install(rec)
        step.custom = True
    except Exception as e:  # another Keras layout or backend: fit and train_on_batch still are
        step = None
        rec.set_meta(keras_step_probe_error=f"{type(e).__name__}: {e}"[:300])
    orig_fit = keras.Model.fit

    def fit(self, x=None, y=None, *a, **k):
        rec.set_meta(fit_site=creation_site(script), loop="fit")
        k = dict(k)
        names = ["batch_size", "epochs"]
        for i, v in enumerate(a[:2]):
            k.setdefault(names[i], v)
        a = ()
        if max_epochs is not None and (k.get("epochs") or 1) > max_epochs:
            k["epochs"] = max_epochs
        cb = callback_class()(_probe_batch(x, y), recorder=rec,
                              batch_size=k.get("batch_size") or (32 if y is not None else None))
        k["callbacks"] = [*(k.get("callbacks") or []), cb]
        _pre_fit_labels(rec, self, cb.probe_data)
        out = orig_fit(self, x, y, *a, **k)
        if rec.stopped:  # a certain fault or the step limit: the rest of the script adds nothing
            raise StopTraining(rec.stopped)
        return out

    keras.Model.fit = fit
    orig_tob = keras.Model.train_on_batch

    def train_on_batch(self, x=None, y=None, *a, **k):
        """A train_on_batch loop: one probe callback per model, called around each batch."""
        cb = self.__dict__.get("_convlint_tob")
        if cb is None:
            rec.set_meta(fit_site=creation_site(script), loop="train_on_batch")
            cb = callback_class()(
                _probe_batch(x, y),
                recorder=rec,
                batch_size=len(x) if x is not None and hasattr(x, "__len__") else None,
            )
            cb.set_model(self)
            object.__setattr__(self, "_convlint_tob", cb)
            self.make_train_function()
            cb.on_train_begin()
        n = rec.step
        cb.on_train_batch_begin(n)
        want_dict = bool(k.pop("return_dict", False))
        logs = orig_tob(self, x, y, *a, return_dict=True, **k)
        cb.on_train_batch_end(n, dict(logs))
        if rec.stopped:
            cb.on_train_end()
            raise StopTraining(rec.stopped)
        if want_dict:
            return logs
        try:  # the order Keras itself returns them in
            return self._flatten_metrics_in_order(logs)
        except Exception:
            vals = list(logs.values())
            return vals[0] if len(vals) == 1 else vals

    keras.Model.train_on_batch = train_on_batch
    orig_compile = keras.Model.compile

    def compile_(self, *a, **k):  # where the loss is chosen
        rec.set_meta(loss_site=creation_site(script))
        return orig_compile(self, *a, **k)

    keras.Model.compile = compile_
    try:
        from keras.src.optimizers.base_optimizer import BaseOptimizer
    except ImportError:  # another Keras layout: no optimizer line, the rest works
        return
    orig_opt_init = BaseOptimizer.__init__

    def opt_init(self, *a, **k):  # where the learning rate is set
        rec.set_meta(optimizer_site=creation_site(script))
        orig_opt_init(self, *a, **k)

    BaseOptimizer.__init__ = opt_init


__all__ = ["StopTraining", "callback_class", "install", "nstats"]
