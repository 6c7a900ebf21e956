"""The instrumented run of a user's script: this file runs *inside* the user's Python process.

Standard library only at import (it may run under another interpreter than convlint's). It
installs an import hook that wraps the converter entry points when their modules load, runs the
script as ``__main__``, and writes ``captures.json`` to the output folder: for each conversion,
the converter and its version, every flag, the call site (file:line), the source model saved in
a loadable format and a copy of the converted model; for full-integer quantization (TFLite's
``representative_dataset``, onnxruntime's ``quantize_static``), the calibration samples the
converter drew, as ``calibration.npz`` (``convlint_calibration.py``).

    python tracer_boot.py --out DIR [--code FILE] [--redirect DIR] SCRIPT [ARGS...]

``--code`` runs another text under the script's name (a rewritten script); ``--redirect``
sends every file the script writes into DIR, so a verification run never overwrites the
user's files. A wrapper never changes what the converter returns or raises.
"""

from __future__ import annotations

import builtins
import copy
import hashlib
import io
import json
import os
import shutil
import sys
import traceback

try:
    from . import convlint_calibration as CAL
except ImportError:  # run as a file (how trace runs it): the sandbox folder is sys.path[0]
    import convlint_calibration as CAL  # pyright: ignore[reportMissingImports]

OUT = ""
SCRIPT = ""
REDIRECT = None
RECORDS: list = []
WRITTEN: dict = {}  # path the script opened for writing -> where it really went
_open = builtins.open


# --- bookkeeping -------------------------------------------------------------------------------
def _dump() -> None:
    tmp = os.path.join(OUT, "captures.json.tmp")
    with _open(tmp, "w") as fh:
        json.dump({"records": RECORDS, "written": WRITTEN}, fh, indent=1, default=repr)
    os.replace(tmp, os.path.join(OUT, "captures.json"))


def _site() -> dict:
    frames = traceback.extract_stack()[:-1]
    for fr in reversed(frames):
        if os.path.abspath(fr.filename) == SCRIPT:
            return {"file": SCRIPT, "line": fr.lineno}
    here = os.path.abspath(__file__)
    for fr in reversed(frames):
        fn = os.path.abspath(fr.filename)
        if fn != here and "site-packages" not in fn and not fn.startswith(sys.prefix):
            return {"file": fn, "line": fr.lineno}
    return {"file": SCRIPT, "line": None}


def _plain(v, depth: int = 0):
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if depth < 3 and isinstance(v, (list, tuple, set)):
        return [_plain(x, depth + 1) for x in v]
    if depth < 3 and isinstance(v, dict):
        return {str(k): _plain(x, depth + 1) for k, x in v.items()}
    name = getattr(v, "name", None)
    if isinstance(name, str) and type(v).__module__.startswith(("tensorflow", "torch", "enum")):
        return f"{type(v).__name__}.{name}"
    if callable(v):
        return f"<function {getattr(v, '__name__', type(v).__name__)}>"
    shape = getattr(v, "shape", None)
    if shape is not None:
        try:
            return f"<{type(v).__name__} shape={[None if d is None else int(d) for d in shape]}>"
        except TypeError:
            pass
    return f"<{type(v).__name__}>"


def _new_record(converter: str, call: str, version: str, flags: dict) -> dict:
    rec = {"index": len(RECORDS), "converter": converter, "call": call, "version": version,
           "flags": {k: _plain(v) for k, v in flags.items()}, "call_site": _site(),
           "source": None, "target": None, "output": None, "error": None, "notes": []}
    RECORDS.append(rec)
    os.makedirs(_dir(rec), exist_ok=True)
    return rec


def _dir(rec: dict) -> str:
    return os.path.join(OUT, f"conversion-{rec['index']}")


def _guard(rec: dict, what: str, fn, *a):
    try:
        return fn(*a)
    except Exception as e:  # capturing must never break the user's script
        rec["notes"].append(f"{what}: {type(e).__name__}: {str(e)[:300]}")
        return None


def _convert(rec: dict, fn, *a, **k):
    """Call the real converter; a converter that raises is recorded (with the flags already in
    ``rec``) before the exception goes on to the user's script."""
    try:
        return fn(*a, **k)
    except Exception as e:
        rec["error"] = f"{type(e).__name__}: {str(e)[:2000]}"
        _dump()
        raise


def _version(mod: str) -> str:
    v = getattr(sys.modules.get(mod), "__version__", None)
    if v:
        return str(v)
    try:
        from importlib.metadata import version

        return version(mod)
    except Exception:
        return "unknown"


# --- saving models -----------------------------------------------------------------------------
def _save_keras(rec: dict, model) -> None:
    path = os.path.join(_dir(rec), "source.keras")
    try:
        model.save(path)
        rec["source"] = {"path": path, "format": "keras"}
    except Exception as e:
        rec["notes"].append(
            f"saving the Keras source as .keras failed ({type(e).__name__}); trying a SavedModel"
        )
        d = os.path.join(_dir(rec), "source_savedmodel")
        model.export(d, verbose=False)
        rec["source"] = {"path": d, "format": "savedmodel"}


def _save_torch(rec: dict, model, args, kwargs) -> None:
    import torch

    m = copy.deepcopy(model).eval()  # the inference semantics; the user's model is untouched
    args = args if isinstance(args, tuple) else (args,)
    path = os.path.join(_dir(rec), "source.pt2")
    ep = torch.export.export(m, args, kwargs=kwargs or None)
    torch.export.save(ep, path)
    rec["source"] = {"path": path, "format": "torch-exported"}


def _copy_target(rec: dict, path: str, ext: str) -> None:
    real = WRITTEN.get(os.path.abspath(path), path)
    dst = os.path.join(_dir(rec), "target" + ext)
    if os.path.isdir(real):
        shutil.copytree(real, dst)
    else:
        shutil.copyfile(real, dst)
        if os.path.exists(real + ".data"):
            shutil.copyfile(real + ".data", dst + ".data")
    rec["target"] = {"path": dst}


def _redirect(path):
    """Where a write to ``path`` goes (itself, unless this is a verification run)."""
    if REDIRECT is None or not isinstance(path, (str, os.PathLike)):
        return path
    p = os.path.abspath(os.fspath(path))
    for keep in (OUT, REDIRECT):
        if p.startswith(keep + os.sep) or p == keep:
            return path
    new = os.path.join(REDIRECT, p.strip(os.sep).replace(os.sep, "__"))
    WRITTEN[p] = new
    return new


_UNREDIRECTED = [0]  # > 0 inside a converter whose own temporary files must stay where it puts them


def _open_hook(file, mode="r", *a, **k):
    if isinstance(file, (str, os.PathLike)) and not _UNREDIRECTED[0]:
        p = os.path.abspath(os.fspath(file))
        if any(c in mode for c in "wax+"):
            if REDIRECT is not None:
                file = _redirect(file)
            elif not os.path.isdir(p):
                WRITTEN.setdefault(p, p)
        elif p in WRITTEN and REDIRECT is not None:
            file = WRITTEN[p]
    return _open(file, mode, *a, **k)


# --- converter wrappers ------------------------------------------------------------------------
def _patch_tflite(mod) -> None:
    cls = getattr(mod, "TFLiteConverterV2", None)
    if cls is None or getattr(cls, "_convlint_patched", False):
        return
    cls._convlint_patched = True
    for factory in ("from_keras_model", "from_saved_model", "from_concrete_functions"):
        orig = cls.__dict__[factory].__func__

        def make(orig=orig, factory=factory):
            def wrapper(klass, *a, **k):
                conv = orig(klass, *a, **k)
                try:
                    conv._convlint = {"factory": factory, "args": a, "kwargs": k, "site": _site()}
                except Exception:
                    pass
                return conv
            return classmethod(wrapper)

        setattr(cls, factory, make())
    for klass in list(vars(mod).values()):  # from_keras_model etc. return subclasses
        if (
            isinstance(klass, type)
            and klass.__name__.startswith("TFLite")
            and "convert" in vars(klass)
        ):
            klass.convert = _tflite_convert(klass.__dict__["convert"])


_DEPTH = [0]


def _tflite_convert(orig_convert):
    def convert(self, *a, **k):
        if _DEPTH[0]:  # a subclass's convert calling its parent's: record the outer call only
            return orig_convert(self, *a, **k)
        _DEPTH[0] += 1
        try:
            return _tflite_convert_outer(orig_convert, self, a, k)
        finally:
            _DEPTH[0] -= 1
    return convert


def _tflite_convert_outer(orig_convert, self, a, k):
    info = getattr(self, "_convlint", {})
    ts = getattr(self, "target_spec", None)
    flags = {
        "factory": info.get("factory"),
        "optimizations": list(getattr(self, "optimizations", []) or []),
        "target_spec.supported_types": list(getattr(ts, "supported_types", []) or []),
        "target_spec.supported_ops": sorted(
            str(o) for o in (getattr(ts, "supported_ops", []) or [])
        ),
        "representative_dataset": getattr(self, "representative_dataset", None) is not None,
        "inference_input_type": getattr(self, "inference_input_type", None),
        "inference_output_type": getattr(self, "inference_output_type", None),
        "allow_custom_ops": getattr(self, "allow_custom_ops", None),
        "experimental_new_converter": getattr(self, "experimental_new_converter", None),
    }
    rec = _new_record(
        "tflite", f"tf.lite.TFLiteConverter.{info.get('factory')}", _version("tensorflow"), flags
    )
    if info.get("site"):
        rec["factory_site"] = info["site"]
    rd = getattr(self, "representative_dataset", None)
    samples = _guard(rec, "recording the representative dataset", _record_dataset, self, rd)
    try:
        data = _convert(rec, orig_convert, self, *a, **k)
    finally:
        if samples is not None:
            self.representative_dataset = rd
    if samples is not None:
        _guard(rec, "saving the calibration samples", _save_calibration, rec, samples,
               "representative_dataset")
    fac, args = info.get("factory"), info.get("args", ())
    if fac == "from_keras_model" and args:
        _guard(rec, "saving the source", _save_keras, rec, args[0])
    elif fac == "from_saved_model":
        path = args[0] if args else info.get("kwargs", {}).get("saved_model_dir")
        rec["source"] = {"path": os.path.abspath(path), "format": "savedmodel"}
    else:
        rec["notes"].append("from_concrete_functions: the source is not saved")
    tgt = os.path.join(_dir(rec), "target.tflite")
    with _open(tgt, "wb") as fh:
        fh.write(data)
    rec["target"] = {"path": tgt}
    rec["target_sha256"] = hashlib.sha256(data).hexdigest()
    _dump()
    return data


def _record_dataset(conv, rd):
    """Make the converter's representative dataset record the samples it yields."""
    if rd is None:
        return None
    samples = CAL.Samples()
    gen = getattr(rd, "input_gen", rd)  # a tf.lite.RepresentativeDataset, or the generator
    wrapped = CAL.recording_generator(gen, samples)
    conv.representative_dataset = type(rd)(wrapped) if hasattr(rd, "input_gen") else wrapped
    return samples


def _save_calibration(rec: dict, samples, source: str) -> None:
    """The samples the converter calibrated on, as ``calibration.npz`` (``--calibration``)."""
    if not samples.items:
        return
    path = os.path.join(_dir(rec), "calibration.npz")
    CAL.save(samples, path)
    rec["calibration"] = samples.summary(path, source)


def _bound(fn, a, k) -> dict:
    import inspect

    try:
        b = inspect.signature(fn).bind_partial(*a, **k)
        return dict(b.arguments)
    except (TypeError, ValueError):
        return dict(k)


def _patch_tf2onnx(mod) -> None:
    for name in ("from_keras", "from_function", "from_tflite"):
        orig = getattr(mod, name, None)
        if orig is None or getattr(orig, "_convlint", False):
            continue

        def make(orig=orig, name=name):
            def wrapper(*a, **k):
                args = _bound(orig, a, k)
                first = a[0] if a else None
                flags = {
                    key: v
                    for key, v in args.items()
                    if key not in ("model", "function", "tflite_path")
                }
                rec = _new_record("tf2onnx", f"tf2onnx.convert.{name}", _version("tf2onnx"), flags)
                if "output_path" in k and k["output_path"]:
                    k = dict(k, output_path=_redirect(k["output_path"]))
                out = _convert(rec, orig, *a, **k)
                proto = out[0] if isinstance(out, tuple) else out
                tgt = os.path.join(_dir(rec), "target.onnx")
                with _open(tgt, "wb") as fh:
                    fh.write(proto.SerializeToString())
                rec["target"] = {"path": tgt}
                rec["output"] = args.get("output_path")
                if name == "from_keras":
                    _guard(rec, "saving the source", _save_keras, rec, args.get("model", first))
                elif name == "from_tflite":
                    p = args.get("tflite_path", first)
                    if p is not None:  # set, as the converter (which needs it) has returned
                        rec["source"] = {"path": os.path.abspath(p), "format": "tflite"}
                else:
                    rec["notes"].append("from_function: the source is not saved")
                _dump()
                return out
            wrapper._convlint = True
            return wrapper

        setattr(mod, name, make())


def _patch_torch_onnx(mod) -> None:
    orig = getattr(mod, "export", None)
    if orig is None or getattr(orig, "_convlint", False):
        return

    def export(*a, **k):
        args = _bound(orig, a, k)
        model = args.get("model")
        margs = args.get("args", ())
        f = args.get("f")
        flags = {key: v for key, v in args.items() if key not in ("model", "args", "f")}
        flags["model.training"] = getattr(model, "training", None)
        rec = _new_record("torch.onnx", "torch.onnx.export", _version("torch"), flags)
        if f is not None:
            if "f" in k:
                k = dict(k, f=_redirect(f))
            elif len(a) > 2:
                a = (*a[:2], _redirect(f), *a[3:])
        out = _convert(rec, orig, *a, **k)
        if isinstance(f, (str, os.PathLike)):
            rec["output"] = os.fspath(f)
            _guard(rec, "copying the output", _copy_target, rec, os.fspath(f), ".onnx")
        elif out is not None and hasattr(out, "save"):
            tgt = os.path.join(_dir(rec), "target.onnx")
            _guard(rec, "saving the ONNX program", out.save, tgt)
            if os.path.exists(tgt):
                rec["target"] = {"path": tgt}
        margs = margs if isinstance(margs, tuple) else (margs,)
        _guard(rec, "saving the source", _save_torch, rec, model, margs, args.get("kwargs"))
        _dump()
        return out

    export._convlint = True
    mod.export = export


def _patch_keras_model(mod) -> None:
    cls = getattr(mod, "Model", None)
    if cls is None or getattr(cls, "_convlint_patched", False):
        return
    cls._convlint_patched = True
    orig = cls.export

    def export(self, filepath, *a, **k):
        fmt = k.get("format", a[0] if a else "tf_saved_model")
        rec = _new_record("keras.export", "keras.Model.export", _version("keras"),
                          {"format": fmt, **{key: v for key, v in k.items() if key != "format"}})
        out = _convert(rec, orig, self, _redirect(filepath), *a, **k)
        rec["output"] = os.fspath(filepath)
        ext = ".onnx" if fmt == "onnx" else ""
        _guard(rec, "copying the output", _copy_target, rec, os.fspath(filepath), ext)
        _guard(rec, "saving the source", _save_keras, rec, self)
        _dump()
        return out

    cls.export = export


def _save_onnx_source(rec: dict, model) -> None:
    """The ONNX model a converter was given (a path or a ModelProto) as ``source.onnx``."""
    dst = os.path.join(_dir(rec), "source.onnx")
    if isinstance(model, (str, os.PathLike)):
        shutil.copyfile(os.fspath(model), dst)
    else:
        with _open(dst, "wb") as fh:
            fh.write(model.SerializeToString())
    rec["source"] = {"path": dst, "format": "onnx"}


def _onnx_example_inputs(path: str) -> tuple:
    """Zeros of each graph input's shape (a dynamic dim as 1), to export a converted module."""
    import numpy as np
    import onnx
    import torch
    from onnx import helper

    g = onnx.load(path).graph
    inits = {i.name for i in g.initializer}
    out = []
    for v in g.input:
        if v.name in inits:
            continue
        t = v.type.tensor_type
        dims = [d.dim_value if d.dim_value > 0 else 1 for d in t.shape.dim]
        out.append(torch.from_numpy(np.zeros(dims, helper.tensor_dtype_to_np_dtype(t.elem_type))))
    return tuple(out)


def _save_torch_target(rec: dict, module, args: tuple) -> None:
    """A converted torch module as ``target.pt2`` (torch.export), or as TorchScript traced on
    ``args`` where export refuses it (onnx2torch's modules with data-dependent attributes)."""
    import torch

    m = module.eval()
    try:
        path = os.path.join(_dir(rec), "target.pt2")
        torch.export.save(torch.export.export(m, args), path)
    except Exception as e:  # noqa: BLE001 - fall back to tracing, and say so
        rec["notes"].append(f"torch.export refused the converted module ({type(e).__name__}); "
                            "saved as TorchScript traced on zeros")
        path = os.path.join(_dir(rec), "target.pt")
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(m, args), path)
    rec["target"] = {"path": path}


def _patch_convert(mod, around) -> None:
    """Wrap ``mod.convert`` (onnx2torch, onnx2tf, litert_torch): ``around(orig, a, k, mod)``
    records the call and returns what the real one returns."""
    orig = getattr(mod, "convert", None)
    if orig is None or getattr(orig, "_convlint", False):
        return

    def convert(*a, **k):
        return around(orig, a, k, mod)

    convert._convlint = True
    mod.convert = convert


def _onnx2torch_call(orig, a, k, mod):
    args = _bound(orig, a, k)
    model = args.get("onnx_model_or_path", a[0] if a else None)
    flags = {key: v for key, v in args.items() if key != "onnx_model_or_path"}
    rec = _new_record("onnx2torch", "onnx2torch.convert", _version("onnx2torch"), flags)
    out = _convert(rec, orig, *a, **k)
    _guard(rec, "saving the source", _save_onnx_source, rec, model)
    if rec["source"] is not None:
        ex = _guard(rec, "making example inputs", _onnx_example_inputs, rec["source"]["path"])
        if ex is not None:
            _guard(rec, "saving the converted module", _save_torch_target, rec, out, ex)
    _dump()
    return out


def _onnx2tf_call(orig, a, k, mod):
    args = _bound(orig, a, k)
    src = args.get("input_onnx_file_path") or args.get("onnx_graph")
    flags = {key: v for key, v in args.items() if key not in ("input_onnx_file_path", "onnx_graph")}
    rec = _new_record("onnx2tf", "onnx2tf.convert", _version("onnx2tf"), flags)
    folder = args.get("output_folder_path", "saved_model")
    k = dict(k, output_folder_path=_redirect(folder))
    out = _convert(rec, orig, *a, **k)
    rec["output"] = os.fspath(folder)
    real = k["output_folder_path"]
    found = sorted(f for f in os.listdir(real) if f.endswith("_float32.tflite")) \
        if os.path.isdir(real) else []
    if found:
        _guard(
            rec, "copying the output", _copy_target, rec, os.path.join(real, found[0]), ".tflite"
        )
    else:
        rec["notes"].append(f"no *_float32.tflite in {folder}: the target is not saved")
    if src is not None:
        _guard(rec, "saving the source", _save_onnx_source, rec, src)
    _dump()
    return out


def _litert_torch_call(orig, a, k, mod):
    args = _bound(orig, a, k)
    module, sample = args.get("module"), args.get("sample_args", ())
    flags = {key: v for key, v in args.items() if key not in ("module", "sample_args")}
    q = args.get("quant_config")
    if q is not None:  # the recipe, field by field: what stage 1 re-runs
        flags["quant_config"] = {f: _plain(getattr(q, f)) for f in
                                 getattr(q, "__dataclass_fields__", {})} or _plain(q)
    rec = _new_record("litert_torch", f"{mod.__name__}.convert", _version(mod.__name__), flags)
    out = _convert(rec, orig, *a, **k)
    tgt = os.path.join(_dir(rec), "target.tflite")
    _guard(rec, "exporting the converted model", out.export, tgt)
    if os.path.exists(tgt):
        rec["target"] = {"path": tgt}
    sample = sample if isinstance(sample, tuple) else (sample,)
    _guard(rec, "saving the source", _save_torch, rec, module, sample, args.get("sample_kwargs"))
    _dump()
    return out


def _patch_ort_quantization(mod) -> None:
    """Wrap onnxruntime's ``quantize_static`` (float ONNX -> int8 ONNX) where users import it."""
    for m in (mod, sys.modules.get("onnxruntime.quantization.quantize")):
        orig = getattr(m, "quantize_static", None) if m is not None else None
        if m is None or orig is None or getattr(orig, "_convlint", False):
            continue

        def quantize_static(*a, _orig=orig, **k):
            return _ort_quantize_call(_orig, a, k)

        quantize_static._convlint = True
        vars(m)["quantize_static"] = quantize_static


def _ort_quantize_call(orig, a, k):
    args = _bound(orig, a, k)
    src, out = args.get("model_input"), args.get("model_output")
    reader = args.get("calibration_data_reader")
    flags = {key: v for key, v in args.items()
             if key not in ("model_input", "model_output", "calibration_data_reader")}
    rec = _new_record("onnxruntime.quantization", "onnxruntime.quantization.quantize_static",
                      _version("onnxruntime"), flags)
    samples = CAL.Samples()
    if reader is not None:
        _guard(rec, "recording the calibration reader", CAL.record_reader, reader, samples)
    if isinstance(src, (str, os.PathLike)) and os.path.abspath(src) in WRITTEN:
        src = WRITTEN[os.path.abspath(src)]  # the script wrote it (redirected): onnx's C++ reads it
        a, k = (), dict(args, model_input=src)
    if out is not None and REDIRECT is not None:  # the output redirected here, ORT's temp files not
        a, k = (), dict(args, model_input=src, model_output=_redirect(out))
    _UNREDIRECTED[0] += 1
    try:
        result = _convert(rec, orig, *a, **k)
    finally:
        _UNREDIRECTED[0] -= 1
        if reader is not None and "get_next" in vars(reader):
            del reader.get_next  # the reader's own method again
    if src is not None:
        _guard(rec, "saving the source", _save_onnx_source, rec, src)
    if out is not None:
        rec["output"] = os.fspath(out)
        _guard(rec, "copying the output", _copy_target, rec, os.fspath(out), ".onnx")
    _guard(rec, "saving the calibration samples", _save_calibration, rec, samples,
           "CalibrationDataReader")
    _dump()
    return result


PATCHES = {"tensorflow.lite.python.lite": _patch_tflite, "tf2onnx.convert": _patch_tf2onnx,
           "torch.onnx": _patch_torch_onnx, "keras.src.models.model": _patch_keras_model,
           "onnx2torch": lambda m: _patch_convert(m, _onnx2torch_call),
           "onnx2tf": lambda m: _patch_convert(m, _onnx2tf_call),
           "litert_torch": lambda m: _patch_convert(m, _litert_torch_call),
           "ai_edge_torch": lambda m: _patch_convert(m, _litert_torch_call),
           "onnxruntime.quantization": _patch_ort_quantization}


class PostImportHook:
    """A meta-path finder that calls ``on_loaded(name, module)`` right after one of ``names``
    finishes executing (the training boot uses it too)."""

    def __init__(self, names, on_loaded):
        self.names, self.on_loaded = names, on_loaded

    def find_spec(self, name, path, target=None):
        if name not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                orig = spec.loader.exec_module

                def exec_module(module, orig=orig, name=name):
                    orig(module)
                    self.on_loaded(name, module)

                spec.loader.exec_module = exec_module
                return spec
        return None


def _instrument(name: str, module) -> None:
    try:
        PATCHES[name](module)
    except Exception as e:  # a converter version we do not know: run unpatched
        print(f"convlint trace: could not instrument {name}: {e}", file=sys.stderr)


def run_as_main(script: str, src: str, args: list, stop: tuple = ()) -> tuple:
    """Run ``src`` as ``script``'s ``__main__`` (argv, sys.path and globals as Python would set
    them). Returns ``(status, error, stopped)``: the exit status, the uncaught exception as a dict
    (type, message, the script's line, traceback) or None, and the exception of one of the
    ``stop`` types that ended the script on purpose, or None."""
    sys.argv = [script, *args]
    # not the boot's folder: its modules must not shadow the user's
    sys.path[0] = os.path.dirname(script)
    g = {"__name__": "__main__", "__file__": script, "__builtins__": builtins}
    try:
        exec(compile(src, script, "exec"), g)
    except stop as e:
        return 0, None, e
    except SystemExit as e:
        return (e.code if isinstance(e.code, int) else (0 if e.code is None else 1)), None, None
    except BaseException as e:
        tb = traceback.extract_tb(e.__traceback__)
        line = next(
            (fr.lineno for fr in reversed(tb) if os.path.abspath(fr.filename) == script), None
        )
        return 3, {"type": type(e).__name__, "message": str(e)[:2000], "line": line,
                   "traceback": "".join(traceback.format_exception(e))[-4000:]}, None
    return 0, None, None


def main(argv: list) -> int:
    global OUT, SCRIPT, REDIRECT
    code_file = None
    while argv and argv[0].startswith("--"):
        flag = argv.pop(0)
        if flag == "--out":
            OUT = os.path.abspath(argv.pop(0))
        elif flag == "--code":
            code_file = argv.pop(0)
        elif flag == "--redirect":
            REDIRECT = os.path.abspath(argv.pop(0))
            os.makedirs(REDIRECT, exist_ok=True)
        elif flag == "--":
            break
    SCRIPT = os.path.abspath(argv[0])
    os.makedirs(OUT, exist_ok=True)
    for name, patch in PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    sys.meta_path.insert(0, PostImportHook(PATCHES, _instrument))
    builtins.open = _open_hook
    io.open = _open_hook
    with _open(code_file or SCRIPT, encoding="utf-8") as fh:
        src = fh.read()
    try:
        status, error, _ = run_as_main(SCRIPT, src, argv[1:])
    finally:
        builtins.open = _open
        io.open = _open
    for rec in RECORDS:  # where did each converted model land?
        if rec.get("target_sha256") and not rec.get("output"):
            for p, real in WRITTEN.items():
                try:
                    with _open(real, "rb") as fh:
                        if hashlib.sha256(fh.read()).hexdigest() == rec["target_sha256"]:
                            rec["output"] = p
                except OSError:
                    pass
    with _open(os.path.join(OUT, "status.json"), "w") as fh:
        json.dump({"status": status, "error": error}, fh)
    _dump()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
