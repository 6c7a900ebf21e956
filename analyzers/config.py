"""Project configuration: ``[tool.convlint]`` in pyproject.toml, or a ``convlint.toml``.

In: a starting directory (or an explicit file). Out: a validated ``Config``. Any error names
the file and the key (``ConvlintError``, exit 2). Command-line flags override what is read here.

    [tool.convlint]                      # in convlint.toml: the same keys at top level
    pairs = [{source = "m.keras", target = "m.tflite", inputs = "x.npz", atol = 1e-4, rtol = 1e-4},
             {source = "zoo/*/model.keras", target = "{dir}/model.tflite"},  # one pair per match
             {source = "a.onnx", target = "a.xml",
              runtime-env = {pip = ["openvino==2025.4"]}},  # Ray's runtime_env for this pair
             {source = "b.keras", target = "b.onnx", num-inputs = 8}]  # random inputs (default 32)
    select = ["CL4", "CL1"]              # rule codes or prefixes (default: all)
    ignore = ["CL431"]
    exclude = ["legacy/**"]
    cache-dir = ".convlint-cache"
    allow-exec = false                   # may `check` run scripts (training checks)?
    train = false                        # `check` also runs the training checks (needs allow-exec)
    train-scripts = ["train.py"]         # which scripts train (default: found by what they call)
    [tool.convlint.training]             # thresholds of the training rules (docs/rules.md)
    dead = 0.8
    [tool.convlint.severity]
    CL412 = "error"
"""

from __future__ import annotations

import glob
import string
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from convlint.analyzers import defaults as D
from convlint.analyzers import rules as R
from convlint.analyzers.errors import ConvlintError

if TYPE_CHECKING:
    from convlint.analyzers.training.rules import Thresholds

KEYS = {
    "pairs",
    "select",
    "ignore",
    "exclude",
    "cache-dir",
    "allow-exec",
    "severity",
    "training",
    "train",
    "train-scripts",
}
PAIR_KEYS = {"source", "target", "inputs", "atol", "rtol", "name", "runtime-env", "num-inputs"}
# what a pattern pair's target, inputs and name may say about each source it matched
PLACEHOLDERS = ("dir", "stem", "name")


@dataclass(frozen=True)
class Pair:
    source: str
    target: str
    inputs: str | None = None
    atol: float | None = None
    rtol: float | None = None
    name: str | None = None
    pattern: str | None = None  # the config's source glob this pair was expanded from, if any
    # Ray's runtime_env for this pair's task (--executor ray): e.g. {pip = [...], env_vars = {...}}
    runtime_env: dict | None = field(default=None, compare=False)
    num_inputs: int | None = None  # random inputs for this pair (default: the check's, 32)

    @property
    def label(self) -> str:
        return self.name or f"{self.source} -> {self.target}"


@dataclass
class Config:
    path: str | None = None  # the file read, if any
    pairs: list = field(default_factory=list)
    select: tuple = ()
    ignore: tuple = ()
    exclude: tuple = ()
    severity: dict = field(default_factory=dict)
    cache_dir: str | None = None
    allow_exec: bool = False
    train: bool = False
    train_scripts: tuple = ()  # paths or globs, resolved against the config file's folder
    training: Thresholds | None = None  # from [tool.convlint.training]


def find_config(start: str) -> Path | None:
    """The nearest convlint.toml, or pyproject.toml with a [tool.convlint] table, upwards."""
    p = Path(start).resolve()
    for d in [p, *p.parents] if p.is_dir() else [p.parent, *p.parent.parents]:
        if (d / "convlint.toml").is_file():
            return d / "convlint.toml"
        pp = d / "pyproject.toml"
        if pp.is_file() and "[tool.convlint" in pp.read_text(encoding="utf-8", errors="ignore"):
            return pp
    return None


def load(path: str | Path | None) -> Config:
    if path is None:
        return Config()
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise ConvlintError(f"{path}: no such config file", rule=R.BAD_ARGUMENTS.code)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConvlintError(f"{path}: not valid TOML: {e}", rule=R.BAD_ARGUMENTS.code) from None
    table = doc.get("tool", {}).get("convlint", {}) if path.name == "pyproject.toml" else doc
    where = "[tool.convlint]" if path.name == "pyproject.toml" else "the top level"
    return parse(table, str(path), where)


def _err(file: str, key: str, msg: str) -> ConvlintError:
    return ConvlintError(f"{file}: {key}: {msg}", rule=R.BAD_ARGUMENTS.code,
                         hint="see the configuration section of the README")


def _strings(file: str, key: str, v) -> tuple:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _err(file, key, f"expected a list of strings, got {v!r}")
    return tuple(v)


def _codes(file: str, key: str, v) -> tuple:
    out = _strings(file, key, v)
    for c in out:
        if not c.startswith("CL") or not any(code.startswith(c) for code in R.RULES):
            raise _err(
                file, key, f"{c!r} matches no rule (codes look like CL411, prefixes like CL4)"
            )
    return out


def parse(table: dict, file: str = "<config>", where: str = "the top level") -> Config:
    if not isinstance(table, dict):
        raise _err(file, "tool.convlint", "expected a table")
    unknown = set(table) - KEYS
    if unknown:
        raise _err(
            file,
            sorted(unknown)[0],
            f"unknown key in {where}; known keys: {', '.join(sorted(KEYS))}",
        )
    base = Path(file).parent if file != "<config>" else Path(".")
    cfg = Config(path=file)
    for i, p in enumerate(table.get("pairs", [])):
        key = f"pairs[{i}]"
        if not isinstance(p, dict):
            raise _err(file, key, "expected a table like {source = ..., target = ...}")
        bad = set(p) - PAIR_KEYS
        if bad:
            raise _err(
                file,
                f"{key}.{sorted(bad)[0]}",
                f"unknown key; known: {', '.join(sorted(PAIR_KEYS))}",
            )
        for k in ("source", "target"):
            if not isinstance(p.get(k), str):
                raise _err(file, f"{key}.{k}", "required, a path")
        for k in ("atol", "rtol"):
            if k in p:
                try:
                    if isinstance(p[k], (bool, str)):
                        raise ValueError(f"{k}: expected a number of at least 0, got {p[k]!r}")
                    D.tolerance(p[k], k)
                except ValueError as e:
                    raise _err(file, f"{key}.{k}", str(e).split(": ", 1)[-1]) from None
        for k in ("inputs", "name"):
            if k in p and not isinstance(p[k], str):
                raise _err(file, f"{key}.{k}",
                           "expected a path" if k == "inputs" else "expected a string")
        pairs = _expand(p, base, file, key)
        if "runtime-env" in p:
            if not isinstance(p["runtime-env"], dict):
                raise _err(file, f"{key}.runtime-env", "expected a table (Ray's runtime_env), "
                           "e.g. {pip = [\"tf2onnx==1.16.1\"]}")
            pairs = [replace(x, runtime_env=dict(p["runtime-env"])) for x in pairs]
        if "num-inputs" in p:
            n = p["num-inputs"]
            try:
                if isinstance(n, (bool, str, float)):
                    raise ValueError(f"expected a whole number of at least 1, got {n!r}")
                n = D.count(n, "num-inputs")
            except ValueError as e:
                raise _err(file, f"{key}.num-inputs", str(e).split(": ", 1)[-1]) from None
            pairs = [replace(x, num_inputs=n) for x in pairs]
        cfg.pairs += pairs
    if "select" in table:
        cfg.select = _codes(file, "select", table["select"])
    if "ignore" in table:
        cfg.ignore = _codes(file, "ignore", table["ignore"])
    if "exclude" in table:
        cfg.exclude = _strings(file, "exclude", table["exclude"])
    sev = table.get("severity", {})
    if not isinstance(sev, dict):
        raise _err(file, "severity", "expected a table of CODE = \"error\"|\"warning\"|\"info\"")
    for code, level in sev.items():
        if code not in R.RULES:
            raise _err(file, f"severity.{code}", "no such rule")
        if level not in ("error", "warning", "info"):
            raise _err(file, f"severity.{code}", f"expected error, warning or info, got {level!r}")
    cfg.severity = dict(sev)
    if "cache-dir" in table:
        if not isinstance(table["cache-dir"], str):
            raise _err(file, "cache-dir", "expected a path")
        cfg.cache_dir = str(base / table["cache-dir"])
    for key, attr in (("allow-exec", "allow_exec"), ("train", "train")):
        if key in table:
            if not isinstance(table[key], bool):
                raise _err(file, key, "expected true or false")
            setattr(cfg, attr, table[key])
    if "train-scripts" in table:
        cfg.train_scripts = tuple(x if Path(x).is_absolute() else str(base / x)
                                  for x in _strings(file, "train-scripts", table["train-scripts"]))
    if "training" in table:
        from convlint.analyzers.training.rules import Thresholds

        t = table["training"]
        if not isinstance(t, dict):
            raise _err(file, "training", "expected a table of thresholds, e.g. dead = 0.8")
        for k, v in t.items():
            if not isinstance(v, (int, float, list)) or isinstance(v, bool):
                raise _err(file, f"training.{k}", f"expected a number, got {v!r}")
        try:
            cfg.training = Thresholds.from_dict(t)
        except (ValueError, TypeError) as e:
            raise _err(file, "training", str(e)) from None
    return cfg


def _rel(base: Path, x: str) -> str:
    return x if Path(x).is_absolute() else str(base / x)


def _expand(p: dict, base: Path, file: str, key: str) -> list[Pair]:
    """One config entry's pairs: itself, or, when its source is a glob, one pair per match
    (sorted), its target, inputs and name filled from the match, so a zoo of hundreds of models
    is one line. A match whose target is missing still makes a pair: the check reports it."""
    src = p["source"]
    if not glob.has_magic(src):
        for k in ("target", "inputs", "name"):
            if k in p and _fields(p[k]):
                raise _err(file, f"{key}.{k}", "placeholders like {dir} need a glob source "
                           "(e.g. source = \"zoo/*/model.keras\")")
        inputs = p.get("inputs")
        return [Pair(_rel(base, src), _rel(base, p["target"]),
                     _rel(base, inputs) if inputs is not None else None,
                     p.get("atol"), p.get("rtol"), p.get("name"))]
    for k in ("target", "inputs", "name"):
        if k in p:
            _template(p[k], file, f"{key}.{k}")
    if not _fields(p["target"]):
        raise _err(file, f"{key}.target", "a glob source needs a target template that differs per "
                   "match, with {dir}, {stem} or {name} (e.g. \"{dir}/model.tflite\")")
    matches = sorted(glob.glob(src, root_dir=None if Path(src).is_absolute() else base,
                               recursive=True))
    if not matches:
        raise _err(file, f"{key}.source", f"the pattern {src!r} matches no file under {base}")
    out = []
    for m in matches:
        mp = Path(m)
        fill = {"dir": mp.parent.as_posix(), "stem": mp.stem, "name": mp.name}
        inputs = p["inputs"].format(**fill) if "inputs" in p else None
        out.append(Pair(_rel(base, m), _rel(base, p["target"].format(**fill)),
                        _rel(base, inputs) if inputs is not None else None,
                        p.get("atol"), p.get("rtol"),
                        p["name"].format(**fill) if "name" in p else None, pattern=src))
    return out


def _fields(text: str) -> list:
    """The placeholder names in ``text`` ({dir} -> "dir"); [] for a plain path or a bad one."""
    try:
        return [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError:
        return []


def _template(text: str, file: str, key: str) -> None:
    """A target, inputs or name template may use only the known placeholders, bare."""
    known = ", ".join("{" + k + "}" for k in PLACEHOLDERS)
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as e:
        raise _err(file, key, f"not a valid template ({e}); placeholders are {known}, "
                   "a literal brace is {{ or }}") from None
    for _, f, spec, conv in parts:
        if f is not None and (f not in PLACEHOLDERS or spec or conv):
            raise _err(file, key, f"unknown placeholder {{{f}{'!' + conv if conv else ''}"
                       f"{':' + spec if spec else ''}}}; known: {known}")


def excluded(path: str, patterns: tuple) -> bool:
    """Whether ``exclude`` (glob patterns, matched as pathlib does, from the right) covers a
    path."""
    return any(Path(path).match(x) for x in patterns or ())


def selected(code: str, select: tuple, ignore: tuple) -> bool:
    """flake8's rule: the longest matching prefix wins; with no select, everything is selected."""
    s = max((len(p) for p in select if code.startswith(p)), default=0 if select else 1)
    i = max((len(p) for p in ignore if code.startswith(p)), default=-1)
    return s > 0 and s > i
