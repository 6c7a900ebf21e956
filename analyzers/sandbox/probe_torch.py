"""PyTorch probe: forward hooks, output-gradient hooks and a wrapper around ``optimizer.step``.

Public API (the user adds it)::

    from convlint.analyzers.training import convlint_probe
    probe = convlint_probe(model, optimizer)      # then train as usual
    report = probe.report()                       # findings over what was recorded

``convlint train-check`` attaches the same probe to every model and optimizer of a script
(``install``). Statistics are computed with torch where the tensors live; only summaries are
kept. The gradient of each layer's output is taken with a tensor hook on the output (what a
full backward hook's ``grad_output`` holds), which, unlike module backward hooks, tolerates the
in-place activations (``ReLU(inplace=True)``) common in real models.
"""

from __future__ import annotations

import weakref
from typing import Any

from . import fused
from .record import Recorder, StopTraining, creation_site

ACTIVATIONS = {
    "ReLU": "relu",
    "ReLU6": "relu",
    "LeakyReLU": "leaky_relu",
    "ELU": "elu",
    "GELU": "gelu",
    "SiLU": "silu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Softmax": "softmax",
    "LogSoftmax": "log_softmax",
    "Hardtanh": "tanh",
    "Softplus": "softplus",
    "Mish": "mish",
}


def tstats(t, act: str | None = None, channel_axis: int = 1) -> dict | None:
    """Summary statistics of a tensor, computed by torch (no copy to numpy)."""
    import torch

    if (
        not isinstance(t, torch.Tensor)
        or t.numel() == 0
        or not (t.is_floating_point() or t.is_complex())
    ):
        return None
    with torch.no_grad():
        f = t.detach().float()
        n = f.numel()
        fin = torch.isfinite(f)
        nbad = int(n - fin.sum())
        g = f[fin] if nbad else f
        if g.numel() == 0:
            return {"n": n, "frac_nonfinite": 1.0}
        d = {"n": n, "mean": float(g.mean()), "std": float(g.std()) if g.numel() > 1 else 0.0,
             "min": float(g.min()), "max": float(g.max()), "absmax": float(g.abs().max()),
             "norm": float(g.norm()), "frac_zero": float((g == 0).float().mean()),
             "frac_nonfinite": nbad / n}
        if act == "sigmoid":
            d["frac_sat"] = float(((g < 0.01) | (g > 0.99)).float().mean())
        elif act == "tanh":
            d["frac_sat"] = float((g.abs() > 0.99).float().mean())
        elif act in ("relu", "leaky_relu") and f.dim() >= 2:
            # a unit is dead when it is zero (or negative) for every sample of the batch
            alive = (
                (torch.nan_to_num(f) > 0)
                .movedim(channel_axis, 0)
                .reshape(f.shape[channel_axis], -1)
                .any(dim=1)
            )
            d["frac_dead"] = float(1.0 - alive.float().mean())
        return d


class TorchProbe:
    """Records one model's training; also the engine behind ``install`` (all models)."""

    def __init__(self, recorder: Recorder, script: str | None = None, flush_every: int = 32):
        self.rec = recorder
        self.script = script
        self.roots: list = []  # weakrefs to the models (root modules) being trained
        self.names: dict[int, str] = {}  # id(module) -> qualified name in its root
        self.unnamed: set[int] = set()  # modules looked up once and found in no trained model
        self.param_owner: dict[int, tuple] = {}  # id(param) -> (layer name, param name)
        # ids of the modules called before the first step (None after it): a model the loop
        # calls but no optimizer holds is found among them
        self.called: set[int] | None = set()
        self.order: list[str] = []  # layers in forward order (first step)
        self.pending: dict[str, dict] = {}  # layer -> {pre, post, gout} of the last forward
        self.last_param_layer: str | None = None
        self.snap: dict = {}  # id(param) -> tensor copy before step
        self.loss = None
        self.loss_info: dict | None = None
        self.metrics: dict = {}
        self.handles: list = []
        self.recording = True
        self._act_depth = 0
        self._mod_info: dict[int, tuple] = {}
        self._opt_seen: tuple | None = None
        self._wcache: tuple = (None, [])
        self._adopted: set = set()
        # steps are reduced on the device and read back in batches (fused.StepBuffer)
        self.buffer = fused.StepBuffer(recorder, fused.torch_readback, size=flush_every)
        self.structure: StructureWatch | None = None  # train-check only (install_structure)

    # -- model bookkeeping -------------------------------------------------------------------------
    def _layer_name(self, module) -> str | None:
        """The module's qualified name in a trained model; a module seen for the first time
        (attached after the model was adopted) makes the names be read again, once per module,
        so modules outside the models (a loss module) cost one lookup per call."""
        n = self.names.get(id(module))
        if n is None and id(module) not in self.unnamed:
            self.unnamed.add(id(module))
            for r in self.roots:
                m = r()
                if m is not None:
                    for qn, mod in m.named_modules():
                        self.names.setdefault(id(mod), qn or type(mod).__name__)
            n = self.names.get(id(module))
        return n

    def add_model(self, model) -> None:
        if any(r() is model for r in self.roots):
            return
        self.roots.append(weakref.ref(model))
        self.unnamed.clear()
        for qn, m in model.named_modules():
            self.names.setdefault(id(m), qn or type(m).__name__)

    def _adopt(self, optimizer) -> None:
        """Find the models whose parameters the optimizer trains (modules built in the script)."""
        import torch

        key = (id(optimizer), sum(len(g["params"]) for g in optimizer.param_groups))
        if key in self._adopted:
            return
        ids = {id(p) for g in optimizer.param_groups for p in g["params"]}
        if ids <= self.param_owner.keys():
            self._adopted.add(key)
            return
        tracked = [m for m in list(_TRACKED) if isinstance(m, torch.nn.Module)]
        # modules inside another
        inner = {id(x) for c in tracked for x in c.modules() if x is not c}
        for m in tracked:
            if id(m) not in inner and any(id(p) in ids for p in m.parameters()):
                self.add_model(m)
        for r in self.roots:
            m = r()
            if m is None:
                continue
            for qn, mod in m.named_modules():
                for pn, p in mod.named_parameters(recurse=False):
                    self.param_owner.setdefault(id(p), (qn or type(mod).__name__, pn))

    # -- hooks -------------------------------------------------------------------------------------
    def forward_pre(self, module, args) -> None:
        if type(module).__name__ in ACTIVATIONS:
            self._act_depth += 1

    def _info(self, module) -> tuple:
        """(kind, is a root, has children, has own parameters, layer name), looked up once per
        module: the forward hook runs for every module call, so it does no other Python work."""
        info = self._mod_info.get(id(module))
        if info is None or info[4] is None:
            info = (
                type(module).__name__,
                any(r() is module for r in self.roots),
                any(True for _ in module.children()),
                any(True for _ in module.parameters(recurse=False)),
                self._layer_name(module),
            )
            self._mod_info[id(module)] = info
        return info

    def forward(self, module, args, output) -> None:
        import torch

        if self.called is not None:
            self.called.add(id(module))
        kind, is_root, has_children, has_params, name = self._info(module)
        if kind in ACTIVATIONS:
            self._act_depth = max(0, self._act_depth - 1)
        if not module.training or not self.recording or not self.rec.wants():
            return
        if (
            is_root
            and "input_std" not in self.rec.meta
            and args
            and isinstance(args[0], torch.Tensor)
            and args[0].is_floating_point()
        ):
            st = tstats(args[0])
            if st and "mean" in st:
                self.rec.set_meta(
                    input_min=st["min"],
                    input_max=st["max"],
                    input_mean=st["mean"],
                    input_std=st["std"],
                )
        if has_children:
            if is_root and isinstance(output, torch.Tensor) and "output_min" not in self.rec.meta:
                st = tstats(output)
                if st and "min" in st:
                    self.rec.set_meta(output_min=st["min"], output_max=st["max"])
            return
        if name is None or not isinstance(output, torch.Tensor):
            return
        if has_params:
            self._see(name, module, kind, None)
            # a copy: an in-place activation after it (ReLU(inplace=True)) would overwrite it
            self.pending.setdefault(name, {})["pre"] = (output.detach().clone(), None)
            self.last_param_layer = name
            self._grad_hook(name, output)
        elif kind in ACTIVATIONS and self.last_param_layer:
            self._post(ACTIVATIONS[kind], output, via=name)

    def _post(self, act: str, output, via: str | None = None) -> None:
        target = self.last_param_layer
        if target is None:
            return
        if self.rec.layers.get(target, {}).get("activation") != act or via is not None and \
                self.rec.layers[target].get("activation_module") != via:
            self.rec.layer(target, activation=act, activation_module=via)
        self.pending.setdefault(target, {})["post"] = (output.detach(), act)

    def functional(self, act: str, output) -> None:
        """A functional activation (``torch.relu(x)``, ``F.sigmoid``) outside an activation
        module."""
        if self._act_depth == 0 and self.recording and self.rec.wants():
            self._post(act, output)

    def _see(self, name: str, module, kind: str, act: str | None) -> None:
        if name not in self.rec.layers:
            site = getattr(module, "_convlint_site", None)
            nparams = sum(p.numel() for p in module.parameters(recurse=False))
            w = getattr(module, "weight", None)
            fan_in = (
                int(w[0].numel()) if w is not None and getattr(w, "dim", lambda: 0)() >= 2 else None
            )
            self.rec.layer(name, type=kind, activation=act, file=(site or {}).get("file"),
                           line=(site or {}).get("line"), params=int(nparams), fan_in=fan_in)

    def _grad_hook(self, name: str, output) -> None:
        if output.requires_grad:
            def hook(g, name=name):
                self.pending.setdefault(name, {})["gout"] = (g.detach(), None)
            output.register_hook(hook)

    def loss_seen(self, value, info: dict | None = None) -> None:
        self.loss = value
        if info is not None:  # this call's metrics replace the last ones; the rest is kept
            self.loss_info = {
                **{k: v for k, v in (self.loss_info or {}).items() if k != "metrics"},
                **info,
            }

    def step_pre(self, optimizer, args, kwargs) -> None:
        import torch

        self._adopt(optimizer)
        # with a closure (Lightning, LBFGS) the gradients are computed inside step(): the
        # structure checks read them before step() and would see none
        # (torch passes step()'s own arguments, the optimizer first)
        closure = args[1] if len(args) > 1 else (kwargs or {}).get("closure")
        if self.structure is not None and closure is None:
            self.structure.at_step(optimizer)
        if not self.rec.wants():
            return
        self.rec.begin_step()
        lr = optimizer.param_groups[0].get("lr")
        if self._opt_seen != (id(optimizer), lr):  # the optimizer's settings, when they change
            self._opt_seen = (id(optimizer), lr)
            self.rec.set_meta(
                framework="torch",
                optimizer=type(optimizer).__name__,
                learning_rate=float(lr) if lr is not None else None,
                optimizer_config={k: _plain(v) for k, v in optimizer.defaults.items()},
            )
        with torch.no_grad():
            for p in self._weights(optimizer):
                self.snap[id(p)] = p.detach().clone()

    def _weights(self, optimizer) -> list:
        """The optimizer's parameters that are a layer's weight (biases are not the layer's W)."""
        n = sum(len(g["params"]) for g in optimizer.param_groups)
        key = (id(optimizer), n, len(self.param_owner))
        if self._wcache[0] != key:
            ws = [p for g in optimizer.param_groups for p in g["params"]
                  if self.param_owner.get(id(p), ("", ""))[1] == "weight"]
            self._wcache = (key, ws)
        return self._wcache[1]

    def step_post(self, optimizer, args, kwargs) -> None:
        if self.rec.current is None:  # not a recorded step
            self._reset()
            reason = self.rec.count_step()
            if reason:
                raise StopTraining(reason)
            return
        tensors, sig = [], []
        for name, d in self.pending.items():
            for k, (t, act) in d.items():
                tensors.append(t)
                sig.append((name, k, act))
        first = self.rec.step == 0
        for p in self._weights(optimizer):
            name = self.param_owner[id(p)][0]
            before = self.snap.get(id(p))
            if first and before is not None:  # the initial weights, before any update
                tensors.append(before)
                sig.append((name, "winit", None))
            tensors.append(p)
            sig.append((name, "w", None))
            if before is not None:
                tensors.append(p.detach() - before)
                sig.append((name, "dw", None))
            if p.grad is not None:  # read after the step: a closure (Lightning) computes it inside
                tensors.append(p.grad)
                sig.append((name, "gw", None))
        if self.loss_info:
            info = {k: v for k, v in self.loss_info.items() if k != "metrics"}
            if any(self.rec.meta.get(k) != v for k, v in info.items()):
                self.rec.set_meta(**info)
        metrics = dict((self.loss_info or {}).get("metrics") or {})
        loss = (
            self.loss.detach().reshape(())
            if self.loss is not None and self.loss.numel() == 1
            else None
        )
        rows = None
        if tensors:  # the rows come in the order the reduction grouped them
            rows, order = fused.torch_rows(tensors, [s[2] for s in sig], [s[1] for s in sig])
            sig = [sig[i] for i in order]
        step, epoch = self.rec.current["step"], self.rec.current.get("epoch")
        self.rec.current = None
        self._reset()
        stop = self.rec.count_step()
        reason = self.buffer.push(step, epoch, sig, rows, loss, metrics)
        if reason or stop:
            self.buffer.flush()
            raise StopTraining(str(reason or stop))

    def _reset(self) -> None:
        self.pending = {}
        self.snap = {}
        self.last_param_layer = None
        self.loss = None


# every nn.Module built while creation tracking is on (weak: nothing is kept alive)
_TRACKED: weakref.WeakSet = weakref.WeakSet()


def _plain(v):
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    return repr(v)


def _loss_info(kind: str, inp, target, from_logits: bool | None = None, full: bool = True) -> dict:
    """What a loss call tells: the loss, the labels' kind, the output's range, the accuracy.
    The accuracy stays a device tensor (read back with the step's batch); ``full=False`` skips
    what needs the host (the labels' kind, the output's range): it changes rarely."""
    import torch

    info: dict = {"loss": kind, "from_logits": from_logits}
    try:
        with torch.no_grad():
            x, y = inp.detach(), target.detach()
            if full:
                info["output_min"], info["output_max"] = (
                    float(torch.nan_to_num(x).min()),
                    float(torch.nan_to_num(x).max()),
                )
            if x.dim() == 2 and not y.is_floating_point() and y.dim() == 1:
                info["labels"], info["num_classes"] = "index", int(x.shape[1])
                info["metrics"] = {"accuracy": (x.argmax(1) == y).float().mean()}
            elif x.dim() == 2 and y.shape == x.shape and x.shape[1] > 1:
                yf = y.float()
                if full:
                    onehot = bool(((yf == 0) | (yf == 1)).all() and (yf.sum(1) == 1).all())
                    info["labels"] = "onehot" if onehot else "real"
                    info["num_classes"] = int(x.shape[1])
                if info.get("labels", "onehot") == "onehot":
                    info["metrics"] = {"accuracy": (x.argmax(1) == yf.argmax(1)).float().mean()}
            elif full:
                yf = y.float().reshape(-1)
                xf = x.float().reshape(-1)
                binary = bool(((yf == 0) | (yf == 1)).all())
                info["labels"] = "binary" if binary else "real"
                info["label_min"], info["label_max"] = float(yf.min()), float(yf.max())
                if binary and xf.shape == yf.shape:
                    thr = 0.0 if from_logits else 0.5
                    info["metrics"] = {"accuracy": ((xf > thr).float() == yf).float().mean()}
    except Exception:  # a loss called with shapes we do not read: the loss value is still kept
        pass
    return info


FULL_LOSS_INFO_EVERY = 50  # steps between full readings of a loss call (labels, output range)

_LOSSES = {"cross_entropy": True, "nll_loss": False, "binary_cross_entropy": False,
           "binary_cross_entropy_with_logits": True, "mse_loss": None, "l1_loss": None,
           "smooth_l1_loss": None, "huber_loss": None, "kl_div": None}
_ACT_FUNCS = {
    "relu": "relu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "softmax": "softmax",
    "leaky_relu": "leaky_relu",
    "gelu": "gelu",
    "elu": "elu",
    "log_softmax": "log_softmax",
}


def install(rec: Recorder, script: str | None) -> TorchProbe:
    """Attach a probe to every model and optimizer of the process (``train-check``): creation
    sites of modules, global forward hooks, optimizer step hooks, loss and functional
    activation wrappers. Returns the probe."""
    import torch
    import torch.nn.functional as F  # noqa: N812
    import torch.optim.optimizer as O  # noqa: N812 - torch.optim deletes its "optimizer" name
    from torch.nn.modules import module as M  # noqa: N812

    probe = TorchProbe(rec, script)
    watch = install_structure(probe, rec)
    orig_init = torch.nn.Module.__init__

    def init(self, *a, **k):
        site = creation_site(script)
        orig_init(self, *a, **k)
        object.__setattr__(self, "_convlint_site", site)
        _TRACKED.add(self)

    torch.nn.Module.__init__ = init
    orig_opt_init = torch.optim.Optimizer.__init__

    def opt_init(self, *a, **k):  # where the learning rate is set
        rec.set_meta(optimizer_site=creation_site(script))
        orig_opt_init(self, *a, **k)
        watch.optimizer_built(self)

    torch.optim.Optimizer.__init__ = opt_init
    M.register_module_forward_pre_hook(probe.forward_pre)
    M.register_module_forward_hook(probe.forward)
    O.register_optimizer_step_pre_hook(probe.step_pre)
    O.register_optimizer_step_post_hook(probe.step_post)
    _wrap_losses(probe, F)
    _wrap_activations(probe, torch, F)
    orig_backward = torch.Tensor.backward

    def backward(self, *a, **k):
        if self.numel() == 1 and probe.loss is None:
            probe.loss_seen(self)
            if "backward_site" not in rec.meta:
                rec.set_meta(backward_site=creation_site(script))
        watch.before_backward()
        out = orig_backward(self, *a, **k)
        watch.after_backward()
        return out

    torch.Tensor.backward = backward
    return probe


def _wrap_losses(probe: TorchProbe, F) -> None:  # noqa: N803
    for name, logits in _LOSSES.items():
        orig = getattr(F, name, None)
        if orig is None:
            continue

        def make(orig=orig, name=name, logits=logits):
            def loss_fn(input, target, *a, **k):
                if "loss_site" not in probe.rec.meta:  # the line that computes the loss
                    probe.rec.set_meta(loss_site=creation_site(probe.script))
                info = None
                # read before the call: a loss that raises (BCE on values outside [0, 1]) still
                # tells
                try:
                    if probe.rec.wants() or not probe.rec.meta.get("loss"):
                        # the whole reading now and then; the accuracy (on the device) every step
                        full = (
                            not probe.rec.meta.get("loss")
                            or probe.rec.step % FULL_LOSS_INFO_EVERY == 0
                        )
                        info = _loss_info(name, input, target, logits, full)
                        # the labels, once, before step 1
                        if not probe.rec.meta.get("label_checked"):
                            info.update(label_stats(input, target), label_checked=True)
                            full = True
                        if full:
                            probe.rec.set_meta(
                                **{k2: v for k2, v in info.items() if k2 != "metrics"}
                            )
                        else:
                            info = (
                                {"metrics": info["metrics"]}
                                if info.get("metrics") is not None
                                else {}
                            )
                except Exception:
                    pass
                out = orig(input, target, *a, **k)
                if info is not None:
                    probe.loss_seen(out, info)
                return out
            return loss_fn

        setattr(F, name, make())


def _wrap_activations(probe: TorchProbe, torch, F) -> None:  # noqa: N803
    for mod in (torch, F):
        for name, act in _ACT_FUNCS.items():
            orig = getattr(mod, name, None)
            if orig is None or getattr(orig, "_convlint", False):
                continue

            def make(orig=orig, act=act):
                def fn(*a, **k):
                    out = orig(*a, **k)
                    try:
                        probe.functional(act, out)
                    except Exception:
                        pass
                    return out
                fn._convlint = True
                return fn

            setattr(mod, name, make())


class ProbeHandle:
    """What ``convlint_probe`` returns: the recorder, the probe and ``report()``."""

    def __init__(self, rec: Recorder, probe: TorchProbe, handles: list):
        self.recorder, self.probe, self.handles = rec, probe, handles

    def trace(self) -> dict:
        return self.recorder.trace()

    def log(self, loss=None, **metrics) -> None:
        """Tell the probe this step's loss (and metrics such as ``accuracy``); call it before
        ``optimizer.step()``. ``convlint train-check`` finds the loss by itself."""
        if loss is not None:
            self.probe.loss = loss
        if metrics:
            self.probe.loss_info = {**(self.probe.loss_info or {}), "metrics": metrics}

    def report(self, script: str = "<training>"):
        from ..training.rules import analyze

        return analyze(self.trace(), script)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def convlint_probe(model, optimizer, *, every: int = 1, path: str | None = None,
                   stop_on_fault: bool = False) -> ProbeHandle:
    """Probe one model and its optimizer (hooks on this model and optimizer only). Layer lines
    are known for modules built while ``install`` tracked creation; otherwise they are null."""
    rec = Recorder(path, every=every, stop_on_fault=stop_on_fault)
    probe = TorchProbe(rec)
    probe.add_model(model)
    for qn, mod in model.named_modules():
        for pn, p in mod.named_parameters(recurse=False):
            probe.param_owner.setdefault(id(p), (qn or type(mod).__name__, pn))
    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(probe.forward_pre))
        handles.append(m.register_forward_hook(probe.forward))
    handles.append(optimizer.register_step_pre_hook(probe.step_pre))
    handles.append(optimizer.register_step_post_hook(probe.step_post))
    return ProbeHandle(rec, probe, handles)


# -- structure: which parameters get a gradient and an update; when gradients are cleared ----------
class StructureWatch:
    """What the training loop does to the gradients (``train-check`` only), read in the first
    ``CHECKED`` backward/step pairs and kept in the trace's meta ``structure``:

    - ``no_grad``: layers whose parameters are in the optimizer but got no gradient from backward;
    - ``not_in_optimizer``: layers of a trained model with trainable parameters no optimizer holds;
    - ``frozen``: layers whose parameters all have ``requires_grad`` False;
    - ``accumulating``: optimizer steps whose gradients were never seen clear (before a backward)
      since that optimizer's previous step (no ``zero_grad`` in the loop); accumulation over
      micro-batches that clears after each step, and another optimizer's backward in between
      (a GAN's loop), are not counted;
    - ``zeroed_before_step``: steps whose gradients were non-zero after backward and all zero or
      None at ``step()`` (``zero_grad`` between backward and step).
    Only one parameter's gradient is read per check besides the per-layer pass at the first steps.
    """

    CHECKED = 6

    def __init__(self, rec: Recorder, probe: TorchProbe):
        self.rec, self.probe = rec, probe
        self.optimizers: list = []  # weakrefs
        # id(optimizer) -> its gradients seen clear since its last step
        self.cleared: dict[int, bool] = {}
        self.stepped_once: set[int] = set()
        self.steps = 0
        self.grad_after_backward = False
        self.s: dict[str, Any] = {"accumulating": 0, "zeroed_before_step": 0, "checked_steps": 0}

    def _params(self) -> list:
        out = []
        for r in self.optimizers:
            o = r()
            if o is not None:
                out += [p for g in o.param_groups for p in g["params"]]
        return out

    @staticmethod
    def _has_grad(p) -> bool:
        g = p.grad
        # a non-finite gradient is a gradient (NaN > 0 is False): the path is not cut
        return g is not None and not bool(g.detach().abs().sum() == 0)

    def optimizer_built(self, optimizer) -> None:
        """A new optimizer: its models are adopted now, so a run that fails before its first
        step (labels a loss rejects) still names its layers."""
        self.optimizers.append(weakref.ref(optimizer))
        try:
            self.probe._adopt(optimizer)
        except Exception:  # adopted again at the first step
            pass

    def before_backward(self) -> None:
        """Per optimizer: are its gradients clear before this backward (``zero_grad`` ran)?"""
        if self.steps > self.CHECKED:
            return
        for r in self.optimizers:
            o = r()
            ps = [
                p
                for g in (o.param_groups if o is not None else ())
                for p in g["params"]
                if p.requires_grad
            ]
            if ps and not self._has_grad(ps[0]):
                self.cleared[id(o)] = True

    def after_backward(self) -> None:
        if self.steps > self.CHECKED:
            return
        ps = [p for p in self._params() if p.requires_grad]
        self.grad_after_backward = any(self._has_grad(p) for p in ps)

    def at_step(self, optimizer) -> None:
        """Before ``step()``: which layers hold a gradient; were the gradients cleared since this
        optimizer's last step (else they accumulate: another optimizer's backward in between, as
        in a GAN's loop, does not count)."""
        if self.steps >= self.CHECKED:
            return
        if id(optimizer) in self.stepped_once and not self.cleared.get(id(optimizer)):
            self.s["accumulating"] += 1
        self.cleared[id(optimizer)] = False
        self.stepped_once.add(id(optimizer))
        self.steps += 1
        self.s["checked_steps"] = self.steps
        ps = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
        if not ps:
            return
        empty = not any(self._has_grad(p) for p in ps)
        if empty and self.grad_after_backward:
            self.s["zeroed_before_step"] += 1
        owner = self.probe.param_owner
        if self.steps == 1:
            no_grad = sorted({owner[id(p)][0] for p in ps if id(p) in owner and p.grad is None})
            if no_grad and not empty:
                self.s["no_grad"] = no_grad
            self.s["all_no_grad"] = bool(empty and not self.grad_after_backward)
            self._membership()
        self.grad_after_backward = False
        self.rec.set_meta(structure=dict(self.s))

    def _membership(self) -> None:
        held = {id(p) for p in self._params()}
        frozen, missing = set(), set()
        for r in self.probe.roots:
            m = r()
            if m is None:
                continue
            for qn, mod in m.named_modules():
                own = list(mod.named_parameters(recurse=False))
                if not own:
                    continue
                name = qn or type(mod).__name__
                if all(not p.requires_grad for _, p in own):
                    frozen.add(name)
                elif any(p.requires_grad and id(p) not in held for _, p in own):
                    missing.add(name)
        if frozen:
            self.s["frozen"] = sorted(frozen)
        if missing:
            self.s["not_in_optimizer"] = sorted(missing)
        # a model the loop called whose trainable parameters no optimizer holds (the optimizer
        # was given another instance's): not among the roots, which come from the optimizers
        called, self.probe.called = self.probe.called or set(), None
        tracked = list(_TRACKED)
        inner = {id(x) for c in tracked for x in c.modules() if x is not c}
        roots = {id(r()) for r in self.probe.roots}
        for m in tracked:
            if id(m) in inner or id(m) in roots or id(m) not in called:
                continue
            if any(p.requires_grad and id(p) not in held for p in m.parameters()):
                site = getattr(m, "_convlint_site", None) or {}
                self.s["untrained_model"] = {"type": type(m).__name__, "file": site.get("file"),
                                             "line": site.get("line")}
                break
        self.s["trained_layers"] = sorted({self.probe.param_owner[id(p)][0] for p in self._params()
                                           if id(p) in self.probe.param_owner})


def label_stats(inp, target) -> dict:
    """The label/target tensor of a loss call against the output: range, distinct values, the
    majority class's rate, and whether the output rows are already probabilities."""
    import torch

    d: dict = {}
    with torch.no_grad():
        x, y = inp.detach().float(), target.detach()
        yf = y.float()
        # the shapes the loss sees: an elementwise loss broadcasts (N, 1) against (N,) to (N, N)
        d["loss_input_shape"], d["loss_target_shape"] = list(x.shape), list(y.shape)
        if yf.numel():
            d["label_min"], d["label_max"] = float(yf.min()), float(yf.max())
            d["label_std"] = float(yf.std()) if yf.numel() > 1 else 0.0
            d["label_integral"] = bool((yf == yf.round()).all())
            if d["label_integral"] and y.is_floating_point():  # class indices cast to float?
                d["label_distinct"] = int(yf.unique().numel())
        if not y.is_floating_point() and y.dim() == 1 and y.numel():
            counts = torch.bincount(y.reshape(-1) - min(0, int(y.min())))
            d["majority_rate"] = float(counts.max()) / y.numel()
            d["label_distinct"] = int((counts > 0).sum())
        if x.dim() == 2 and x.shape[1] > 1 and x.numel():
            rows = x.sum(1)
            d["output_is_probability"] = bool((x >= 0).all() and ((rows - 1).abs() < 1e-3).all())
            d["output_units"] = int(x.shape[1])
        elif x.numel():
            d["output_units"] = 1 if x.dim() <= 1 or x.shape[-1] == 1 else int(x.shape[-1])
    return d


def install_structure(probe: TorchProbe, rec: Recorder) -> StructureWatch:
    """Attach a ``StructureWatch`` (``install`` calls it; it wraps nothing ``install`` has not)."""
    w = StructureWatch(rec, probe)
    probe.structure = w
    return w
