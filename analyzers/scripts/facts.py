"""Static facts of a Python conversion script, from one walk of its AST.

In: the script's text. Out: ``ScriptFacts``: the converter calls with their flags and the lines
that configure them, the models the script loads or builds, the layers it builds, and the places
where it feeds data to a model or a runtime. Nothing is executed and no framework is imported;
names are resolved through the script's own imports and simple constant assignments.
"""

from __future__ import annotations

import ast
import functools
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from convlint.analyzers.scripts import reparse

if TYPE_CHECKING:
    from convlint.analyzers.scripts.edits import Located

UNKNOWN = object()  # a value that cannot be known without running the script

# a few module paths users reach through other names
_CANON = (
    ("tensorflow.keras.", "keras."),
    ("tf_keras.", "keras."),
    ("keras.api.", "keras."),
    ("tensorflow.compat.v1.lite.", "tensorflow.lite."),
    ("tensorflow.compat.v2.", "tensorflow."),
    ("tensorflow.lite.TFLiteConverterV2.", "tensorflow.lite.TFLiteConverter."),
    ("keras.models.Sequential", "keras.Sequential"),
    ("keras.models.Model", "keras.Model"),
    ("keras.saving.load_model", "keras.models.load_model"),
    ("ai_edge_litert.interpreter.", "tflite.interp."),
    ("tflite_runtime.interpreter.", "tflite.interp."),
    ("tensorflow.lite.Interpreter", "tflite.interp.Interpreter"),
)

TFLITE_FACTORIES = {f"tensorflow.lite.TFLiteConverter.{m}": m
                    for m in ("from_keras_model", "from_saved_model", "from_concrete_functions")}
TF2ONNX_CALLS = {f"tf2onnx.convert.{m}": m for m in ("from_keras", "from_function", "from_tflite",
                                                       "from_graph_def")}
OTHER_CONVERTERS = {"torch.onnx.export": "torch.onnx", "torch.onnx.dynamo_export": "torch.onnx",
                    "onnx2tf.convert": "onnx2tf", "onnx2torch.convert": "onnx2torch",
                    "litert_torch.convert": "litert_torch", "ai_edge_torch.convert": "litert_torch"}
KERAS_LOADS = {"keras.models.load_model"}
KERAS_BUILDS = {"keras.Sequential", "keras.Model"}
TORCH_LOADS = {"torch.load", "torch.jit.load", "torch.export.load"}


@functools.lru_cache(maxsize=4096)
def canon(q: str | None) -> str | None:
    if q is None:
        return None
    for a, b in _CANON:
        if q.startswith(a):
            q = b + q[len(a):]
        elif q + "." == a:
            q = b.rstrip(".")
    return q


@dataclass(frozen=True)
class Span:
    """A source range: lines 1-based, columns 0-based, end exclusive (as in ``ast``)."""
    line: int
    col: int
    end_line: int
    end_col: int

    @classmethod
    def of(cls, node: Located) -> Span:
        return cls(node.lineno, node.col_offset, node.end_lineno or node.lineno,
                   node.end_col_offset if node.end_col_offset is not None else node.col_offset)


@dataclass(frozen=True)
class Sym:
    """A dotted name from an imported module, e.g. ``tensorflow.lite.Optimize.DEFAULT``."""
    name: str

    def endswith(self, *tails: str) -> bool:
        return any(self.name == t or self.name.endswith("." + t) for t in tails)


@dataclass
class Arg:
    value: object  # a Python constant, a Sym, a list of those, or UNKNOWN
    node: ast.AST
    span: Span


@dataclass
class Conversion:
    """One converter call and everything the script says about it."""

    converter: (
        str  # tflite | tf2onnx | torch.onnx | keras.export | onnx2tf | onnx2torch | litert_torch
    )
    call: str  # the canonical name of the call (or the factory, for TFLite)
    span: Span  # the call (for TFLite: the factory call)
    stmt: Span  # the statement holding the call
    args: list = field(default_factory=list)  # positional Args
    kwargs: dict = field(default_factory=dict)  # keyword name -> Arg
    attrs: dict = field(default_factory=dict)  # TFLite: converter attribute -> Arg (statement span)
    var: str | None = None  # the name bound to the converter object (TFLite)
    result_var: str | None = None  # the name bound to the converted model (bytes, proto, program)
    convert_span: Span | None = None  # TFLite: the .convert() call
    output: str | None = None  # the converted model's path, where the script makes it known
    lines: set = field(default_factory=set)  # every line that configures this conversion
    node: ast.Call | None = field(default=None, repr=False, compare=False)
    # the statement holding the call (the call itself if none does)
    stmt_node: ast.stmt | ast.Call | None = field(default=None, repr=False, compare=False)

    def kw(self, name: str, pos: int | None = None):
        """The value of a keyword (or positional) argument, or None when absent."""
        if name in self.kwargs:
            return self.kwargs[name].value
        if pos is not None and pos < len(self.args):
            return self.args[pos].value
        return None

    def arg_node(self, name: str, pos: int | None = None):
        if name in self.kwargs:
            return self.kwargs[name]
        if pos is not None and pos < len(self.args):
            return self.args[pos]
        return None


@dataclass
class ModelVar:
    name: str
    framework: str  # keras | torch
    origin: str  # load | build
    path: str | None
    span: Span


@dataclass
class LayerBuild:
    call: str  # canonical name, e.g. keras.layers.UpSampling2D or torch.nn.BatchNorm2d
    args: list
    kwargs: dict
    span: Span
    node: ast.Call


@dataclass
class Feed:
    """Data going into a model: ``role`` is source (the framework model) or target (a runtime)."""
    role: str
    runtime: str  # keras | torch | tflite | onnxruntime
    model: str | None  # a model variable name, or the model file path a runtime was opened on
    data: ast.expr
    span: Span


@dataclass
class ScriptFacts:
    path: str
    text: str
    aliases: dict = field(default_factory=dict)
    conversions: list = field(default_factory=list)
    models: dict = field(default_factory=dict)  # name -> ModelVar (the latest binding)
    layers: list = field(default_factory=list)
    feeds: list = field(default_factory=list)
    assigns: dict = field(default_factory=dict)  # name -> [(line, expr)]
    functions: dict = field(default_factory=dict)  # name -> FunctionDef
    torch_classes: set = field(default_factory=set)
    eval_lines: dict = field(
        default_factory=dict
    )  # model name -> lines where eval() / train(False)
    train_lines: dict = field(default_factory=dict)  # model name -> lines where train()
    runtimes: dict = field(default_factory=dict)  # runtime var -> (kind, model path or result var)
    frameworks: set = field(default_factory=set)  # top-level modules imported
    syntax_error: SyntaxError | None = None
    tree: ast.Module | None = field(default=None, repr=False)
    alone: set = field(
        default_factory=set
    )  # ids of statements that are the only one of their block

    # --- resolution helpers --------------------------------------------------------------
    def qual(self, node) -> str | None:
        """The canonical dotted name of an expression built from imported names, or None."""
        if isinstance(node, ast.Name):
            base = self.aliases.get(node.id)
            return canon(base) if base else None
        if isinstance(node, ast.Attribute):
            q = self.qual(node.value)
            return canon(f"{q}.{node.attr}") if q else None
        return None

    def binding(self, name: str, before: int):
        """The expression last assigned to ``name`` before line ``before``."""
        best = None
        for line, expr in self.assigns.get(name, ()):
            if line < before:
                best = expr
        return best

    def const(self, node, before: int | None = None, depth: int = 0):
        """Evaluate a constant expression (literals, names of constants, paths, imported
        symbols); UNKNOWN otherwise."""
        if node is None or depth > 8:
            return UNKNOWN
        if before is None:
            before = cast(int, getattr(node, "lineno", 10**9))
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return [self.const(e, before, depth + 1) for e in node.elts]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            v = self.const(node.operand, before, depth + 1)
            return -v if isinstance(v, (int, float)) else UNKNOWN
        q = self.qual(node)
        if q is not None and (isinstance(node, ast.Attribute) or (
                isinstance(node, ast.Name) and node.id not in self.assigns)):
            return Sym(q)
        if isinstance(node, ast.Name):
            return self.const(self.binding(node.id, before), before, depth + 1)
        if isinstance(node, ast.BinOp):
            a, b = (
                self.const(node.left, before, depth + 1),
                self.const(node.right, before, depth + 1),
            )
            if isinstance(node.op, ast.Div) and isinstance(a, str) and isinstance(b, str):
                return os.path.join(a, b)  # pathlib: Path(a) / "b"
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)):
                try:
                    return {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}.get(type(node.op)) \
                        if not isinstance(node.op, ast.Div) else a / b
                except ZeroDivisionError:
                    return UNKNOWN
            if isinstance(node.op, ast.Add) and isinstance(a, str) and isinstance(b, str):
                return a + b
            return UNKNOWN
        if isinstance(node, ast.Call):
            q = self.qual(node.func)
            vals = [self.const(a, before, depth + 1) for a in node.args]
            if (
                q in ("os.path.join", "posixpath.join")
                and vals
                and all(isinstance(v, str) for v in vals)
            ):
                return os.path.join(*vals)
            if q in ("pathlib.Path", "pathlib.PurePath", "str", "os.fspath") or (
                    isinstance(node.func, ast.Name) and node.func.id == "str"):
                if len(vals) == 1 and isinstance(vals[0], str):
                    return vals[0]
                if vals and all(isinstance(v, str) for v in vals):
                    return os.path.join(*vals)
            if q in ("numpy.array", "numpy.asarray", "torch.tensor") and len(vals) == 1:
                return vals[0]
        return UNKNOWN

    def segment(self, node) -> str:
        return ast.get_source_segment(self.text, node) or ""


def analyze_text(text: str, path: str = "<script>") -> ScriptFacts:
    facts = ScriptFacts(path=path, text=text)
    try:
        tree = reparse.parse(text, path)  # ast.parse, reusing what an edit left alone
    except SyntaxError as e:
        facts.syntax_error = e
        return facts
    facts.tree = tree
    _Walker(facts).visit(tree)
    return facts


_METHODS = {"eval", "train", "convert", "write", "write_bytes", "save", "export", "predict",
            "set_tensor", "run"}


_BLOCKS = {"body", "orelse", "finalbody"}
# nodes with nothing to visit below them (a Name holds a str and its context)
_LEAVES = (
    ast.expr_context,
    ast.Constant,
    ast.Name,
    ast.operator,
    ast.cmpop,
    ast.unaryop,
    ast.boolop,
)
# fields that hold a str, int or leaf in every node type that has them: never walked
_NOT_NODES = {
    "id",
    "attr",
    "arg",
    "name",
    "asname",
    "module",
    "level",
    "type_comment",
    "kind",
    "ctx",
    "op",
    "is_async",
    "conversion",
    "simple",
    "names",
}


def _subclasses(t: type) -> set:
    out = {t}
    for s in t.__subclasses__():
        out |= _subclasses(s)
    return out


# what a walk steps over without a call: the leaves, and what else a node's list may hold (a
# Global's names, a Dict's None keys)
_SKIP = {type(None), str, int}.union(*(_subclasses(t) for t in _LEAVES))


def _walker_source(t: type) -> str:
    """The source of the function that walks the children of a node of type ``t``, its fields
    unrolled (this walk is most of a script's analysis, and a loop over ``_fields`` with a getattr
    each was a third of the walk). Leaves are skipped by exact type, a statement is ``w.stmt``
    while its children are walked, and a block of one statement is noted for the editor
    (``ScriptFacts.alone``)."""
    is_stmt = issubclass(t, ast.stmt)
    body = ["    outer = w.stmt", "    w.stmt = node"] if is_stmt else []
    for f in t._fields:
        if f in _NOT_NODES:
            continue
        body += [f"    v = node.{f}",
                 "    if type(v) is list:"]
        if f in _BLOCKS and t is not ast.Module:
            body += ["        if len(v) == 1:",
                     "            w.f.alone.add(id(v[0]))"]
        body += ["        for x in v:",
                 "            if type(x) not in SKIP:",
                 "                D[type(x)](w, x)",
                 "    elif type(v) not in SKIP:",
                 "        D[type(v)](w, v)"]
    if is_stmt:
        body.append("    w.stmt = outer")
    return "def walk(w, node):\n" + ("\n".join(body) or "    pass") + "\n"


class _Walks(dict):
    """node type -> the walk of its children (``_walker_source``), compiled the first time a node
    of that type is met (a script meets some 35 of Python's ~75 node types)."""

    def __missing__(self, t: type):
        ns = {"D": _DISPATCH, "SKIP": _SKIP}
        exec(compile(_walker_source(t), f"<convlint walk of ast.{t.__name__}>", "exec"), ns)
        self[t] = ns["walk"]
        return ns["walk"]


class _Dispatch(dict):
    """node type -> function(walker, node): the walker's visit_ method (set below the class), or
    the walk of the node's children."""

    def __missing__(self, t: type):
        self[t] = _WALKS[t]
        return self[t]


_WALKS, _DISPATCH = _Walks(), _Dispatch()


class _Walker(ast.NodeVisitor):
    def __init__(self, facts: ScriptFacts):
        self.f = facts
        self.by_call: dict[int, Conversion] = {}
        self.file_vars: dict[str, str] = {}  # with open(p, "wb") as fh -> fh: p
        self.stmt: ast.stmt | None = None

    # --- imports ---------------------------------------------------------------------------
    def visit_Import(self, node):
        for a in node.names:
            self.f.frameworks.add(a.name.split(".")[0])
            if a.asname:
                self.f.aliases[a.asname] = a.name
            else:
                top = a.name.split(".")[0]
                self.f.aliases[top] = top

    def visit_ImportFrom(self, node):
        if not node.module or node.level:
            return
        self.f.frameworks.add(node.module.split(".")[0])
        for a in node.names:
            if a.name != "*":
                self.f.aliases[a.asname or a.name] = f"{node.module}.{a.name}"

    # --- definitions -----------------------------------------------------------------------
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef):
        self.f.functions[node.name] = node
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        for b in node.bases:
            q = self.f.qual(b) or ""
            if q in ("torch.nn.Module", "torch.nn.modules.module.Module") or \
                    (isinstance(b, ast.Name) and b.id in self.f.torch_classes):
                self.f.torch_classes.add(node.name)
        self.generic_visit(node)

    # --- statements ------------------------------------------------------------------------
    def visit(self, node):
        _DISPATCH[type(node)](self, node)

    def generic_visit(self, node):
        """Walk a node's children (the compiled walk of its type, see ``_walker_source``)."""
        _WALKS[type(node)](self, node)

    def visit_With(self, node):
        for item in node.items:
            if isinstance(item.optional_vars, ast.Name) and isinstance(item.context_expr, ast.Call):
                c = item.context_expr
                if (isinstance(c.func, ast.Name) and c.func.id == "open") or self.f.qual(
                    c.func
                ) in ("tensorflow.io.gfile.GFile", "io.open"):
                    p = self.f.const(c.args[0]) if c.args else UNKNOWN
                    if isinstance(p, str):
                        self.file_vars[item.optional_vars.id] = p
        self.generic_visit(node)

    def visit_Assign(self, node):
        self.generic_visit(node)
        for t in node.targets:
            if isinstance(t, ast.Name):
                self._bind(t.id, node.value, node)
            elif isinstance(t, ast.Attribute):
                self._set_attr(t, node)
            elif (
                isinstance(t, ast.Tuple)
                and t.elts
                and isinstance(t.elts[0], ast.Name)
                and id(node.value) in self.by_call
            ):  # model_proto, _ = tf2onnx.convert.from_keras(...)
                self.by_call[id(node.value)].result_var = t.elts[0].id

    def visit_AnnAssign(self, node):
        self.generic_visit(node)
        if isinstance(node.target, ast.Name) and node.value is not None:
            self._bind(node.target.id, node.value, node)

    def _bind(self, name: str, value: ast.expr, stmt: ast.stmt):
        f = self.f
        f.assigns.setdefault(name, []).append((stmt.lineno, value))
        call = value if isinstance(value, ast.Call) else None
        # model = Net().eval() / model = model.to(device)
        inner = call
        while (
            inner is not None
            and isinstance(inner.func, ast.Attribute)
            and inner.func.attr in ("eval", "to", "cpu", "float", "train")
            and isinstance(inner.func.value, ast.Call)
        ):
            inner = inner.func.value
        if call is not None and id(call) in self.by_call:
            conv = self.by_call[id(call)]
            if conv.converter == "tflite":
                conv.var = name
            else:
                conv.result_var = name
            return
        if (
            call is not None
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "convert"
        ):
            conv = self._tflite_of(call.func.value)
            if conv is not None:
                conv.result_var = name
                conv.lines.add(stmt.lineno)
                return
        if inner is not None:
            q = f.qual(inner.func)
            if q in KERAS_LOADS or q in TORCH_LOADS:
                path = f.const(inner.args[0]) if inner.args else UNKNOWN
                path = path if isinstance(path, str) else None
                f.models[name] = ModelVar(
                    name, "keras" if q in KERAS_LOADS else "torch", "load", path, Span.of(stmt)
                )
            elif q in KERAS_BUILDS or (q or "").startswith("keras.applications."):
                f.models[name] = ModelVar(name, "keras", "build", None, Span.of(stmt))
            elif q == "torch.nn.Sequential" or (q or "").startswith("torchvision.models.") or (
                    isinstance(inner.func, ast.Name) and inner.func.id in f.torch_classes):
                f.models[name] = ModelVar(name, "torch", "build", None, Span.of(stmt))
            if inner is not call and name in f.models and call is not None and \
                    isinstance(call.func, ast.Attribute) and call.func.attr == "eval":
                f.eval_lines.setdefault(name, []).append(stmt.lineno)
            self._runtime(name, q, inner)
        if isinstance(value, ast.Name) and value.id in f.models:  # alias of a model
            m = f.models[value.id]
            f.models[name] = ModelVar(name, m.framework, m.origin, m.path, Span.of(stmt))

    def _runtime(self, name: str, q: str | None, call: ast.Call):
        if q in ("tflite.interp.Interpreter",):
            kws = {k.arg: k.value for k in call.keywords}
            if "model_path" in kws or call.args:
                p = self.f.const(kws.get("model_path") or call.args[0])
                self.f.runtimes[name] = ("tflite", p if isinstance(p, str) else None)
            elif isinstance(content := kws.get("model_content"), ast.Name):
                self.f.runtimes[name] = ("tflite", "var:" + content.id)
        elif q == "onnxruntime.InferenceSession":
            p = self.f.const(call.args[0]) if call.args else UNKNOWN
            if isinstance(p, str):
                self.f.runtimes[name] = ("onnxruntime", p)
            elif call.args and isinstance(call.args[0], ast.Name):
                self.f.runtimes[name] = ("onnxruntime", "var:" + call.args[0].id)
            else:
                self.f.runtimes[name] = ("onnxruntime", None)

    def _tflite_of(self, node) -> Conversion | None:
        if isinstance(node, ast.Name):
            for c in reversed(self.f.conversions):
                if c.converter == "tflite" and c.var == node.id:
                    return c
        return None

    def _set_attr(self, target: ast.Attribute, stmt: ast.Assign):
        parts = []
        node = target
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        conv = self._tflite_of(node)
        if conv is not None:
            key = ".".join(reversed(parts))
            conv.attrs[key] = Arg(self.f.const(stmt.value), stmt, Span.of(stmt))
            conv.lines.add(stmt.lineno)

    # --- calls -----------------------------------------------------------------------------
    def visit_Call(self, node):
        self.generic_visit(node)
        f = self.f
        q = f.qual(node.func)
        stmt = self.stmt or node
        layer = q is not None and (
            q.startswith("keras.layers.")
            or q.startswith("torch.nn.")
            or q in ("keras.activations.gelu", "tensorflow.nn.gelu", "tensorflow.image.resize")
        )
        converter = q in TFLITE_FACTORIES or q in TF2ONNX_CALLS or q in OTHER_CONVERTERS
        method = isinstance(node.func, ast.Attribute) and node.func.attr in _METHODS
        if not (layer or converter or method):
            if (
                isinstance(node.func, ast.Name) and node.func.id in f.models and node.args
            ):  # model(x)
                m = f.models[node.func.id]
                f.feeds.append(Feed("source", m.framework, m.name, node.args[0], Span.of(node)))
            return
        args = [Arg(f.const(a), a, Span.of(a)) for a in node.args]
        kwargs = {k.arg: Arg(f.const(k.value), k, Span.of(k)) for k in node.keywords if k.arg}
        if q in TFLITE_FACTORIES or q in TF2ONNX_CALLS or q in OTHER_CONVERTERS:
            kind = (
                "tflite"
                if q in TFLITE_FACTORIES
                else "tf2onnx"
                if q in TF2ONNX_CALLS
                else OTHER_CONVERTERS[q]
            )
            conv = Conversion(
                kind,
                q,
                Span.of(node),
                Span.of(stmt),
                args,
                kwargs,
                lines={*range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1)},
                node=node,
                stmt_node=stmt,
            )
            conv.output = self._output_of(conv)
            f.conversions.append(conv)
            self.by_call[id(node)] = conv
            return
        if method and isinstance(node.func, ast.Attribute):
            self._method(node, node.func, args, kwargs, stmt)
        if layer and q is not None:
            f.layers.append(LayerBuild(q, args, kwargs, Span.of(node), node))

    def _method(self, node, func: ast.Attribute, args, kwargs, stmt):
        f = self.f
        recv = func.value
        name = recv.id if isinstance(recv, ast.Name) else None
        attr = func.attr
        if attr in ("eval", "train") and name:
            mode = (
                kwargs.get("mode").value if "mode" in kwargs else (args[0].value if args else True)
            )
            target = f.eval_lines if attr == "eval" or mode is False else f.train_lines
            target.setdefault(name, []).append(node.lineno)
        elif attr == "convert" and (conv := self._tflite_of(recv)) is not None:
            conv.convert_span = Span.of(node)
            conv.lines.add(node.lineno)
        elif (
            attr in ("write", "write_bytes", "save")
            and args
            and isinstance(args[0].node, ast.Name)
            or attr == "save"
            and name
            or attr == "export"
            and name
            and any(c.result_var == name for c in f.conversions)
        ):
            self._written(node, func, args, stmt)  # litert_torch's edge_model.export(path) too
        elif attr == "export" and name in f.models and f.models[name].framework == "keras":
            conv = Conversion(
                "keras.export",
                "keras.Model.export",
                Span.of(node),
                Span.of(stmt),
                args,
                kwargs,
                lines={stmt.lineno},
                node=node,
                stmt_node=stmt,
            )
            conv.var = name
            p = conv.kw("filepath", 0)
            conv.output = p if isinstance(p, str) else None
            f.conversions.append(conv)
        elif attr == "predict" and name in f.models and args:
            f.feeds.append(
                Feed("source", f.models[name].framework, name, args[0].node, Span.of(node))
            )
        elif attr == "set_tensor" and name in f.runtimes and len(args) > 1:
            f.feeds.append(
                Feed("target", "tflite", f.runtimes[name][1], args[1].node, Span.of(node))
            )
        elif attr == "run" and name in f.runtimes and f.runtimes[name][0] == "onnxruntime":
            feed = kwargs.get("input_feed") or (args[1] if len(args) > 1 else None)
            d = feed.node.value if feed is not None and isinstance(feed.node, ast.keyword) else (
                feed.node if feed is not None else None)
            if isinstance(d, ast.Dict):
                for v in d.values:
                    f.feeds.append(
                        Feed("target", "onnxruntime", f.runtimes[name][1], v, Span.of(node))
                    )

    def _written(self, node, func: ast.Attribute, args, stmt):
        """fh.write(tflite_model), Path(p).write_bytes(m), onnx_program.save(p), onnx.save(m, p)."""
        f = self.f
        data = args[0].node.id if args and isinstance(args[0].node, ast.Name) else None
        recv = func.value
        path = None
        # onnx_program.save(path); litert_torch's edge_model.export(path)
        if func.attr in ("save", "export") and isinstance(recv, ast.Name):
            for c in f.conversions:
                if c.result_var == recv.id and args and isinstance(args[0].value, str):
                    c.output = args[0].value
                    c.lines.add(node.lineno)
            return
        if isinstance(recv, ast.Name):
            path = self.file_vars.get(recv.id)
        elif isinstance(recv, ast.Call):
            path = f.const(recv.args[0]) if recv.args else UNKNOWN
            path = path if isinstance(path, str) else None
        for c in f.conversions:
            if data and c.result_var == data and path:
                c.output = path
                c.lines.add(node.lineno)

    def visit_Expr(self, node):
        self.generic_visit(node)
        call = node.value
        # onnx.save(model_proto, path) for a tf2onnx result
        if (
            isinstance(call, ast.Call)
            and self.f.qual(call.func) in ("onnx.save", "onnx.save_model")
            and len(call.args) > 1
            and isinstance(call.args[0], ast.Name)
        ):
            p = self.f.const(call.args[1])
            for c in self.f.conversions:
                if c.result_var == call.args[0].id and isinstance(p, str):
                    c.output = p
                    c.lines.add(node.lineno)

    def _output_of(self, conv: Conversion) -> str | None:
        if conv.converter == "tf2onnx":
            v = conv.kw("output_path")
        elif conv.converter == "torch.onnx":
            v = conv.kw("f", 2)
        elif conv.converter == "onnx2tf":
            v = conv.kw("output_folder_path")
        else:
            return None
        return v if isinstance(v, str) else None


_DISPATCH.update({getattr(ast, n[6:]): getattr(_Walker, n) for n in dir(_Walker)
                  if n.startswith("visit_") and hasattr(ast, n[6:])})
