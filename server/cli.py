"""The ``convlint`` command line: thin, one function per subcommand.

Each subcommand builds library objects from its arguments and calls the same
``convlint.analyzers`` entry points the language server calls. Exit codes follow the contract:
0 analysed and no error finding, 1 at least one error finding, 2 could not analyse.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

from convlint import __version__

FORMATS = ("text", "json")
CHECK_FORMATS = ("text", "json", "sarif", "github", "junit")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print usage and exit 2 with no JSON
        from convlint.analyzers.errors import ConvlintError

        raise ConvlintError(f"{self.prog}: {message}", hint=f"see '{self.prog} --help'")


def _floats(text: str) -> list:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None




def _non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, got {text!r}")
    return v


def _address(text: str) -> str:
    """``PORT`` or ``HOST:PORT`` -> ``HOST:PORT`` (host 127.0.0.1 by default)."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(
            f"expected PORT or HOST:PORT with a port from 1 to 65535, got {text!r}"
        )
    return f"{host or '127.0.0.1'}:{int(port)}"


def _codes(text: str) -> tuple:
    return tuple(c.strip() for c in text.split(",") if c.strip())




def _script_options(p, script_help: str, python_help: str) -> None:
    """What trace and train-check share: the script, consent, and how it runs."""
    from convlint.analyzers.app.requests import TraceRequest

    p.add_argument("script", help=script_help)
    p.add_argument(
        "script_args", nargs="*", metavar="ARG", help="arguments for the script (after --)"
    )
    p.add_argument("--allow-exec", action="store_true", help="consent to run the script (required)")
    p.add_argument(
        "--timeout", help=f"seconds the script may run (default {TraceRequest.timeout:g})"
    )
    p.add_argument(
        "--memory-limit",
        type=_non_negative_int,
        metavar="MB",
        default=None,
        help="the script's address-space limit in MB (default: the machine's memory, at least "
        "8192; 0: none)",
    )
    p.add_argument("--python", metavar="EXE", help=python_help)
    p.add_argument(
        "--cwd", metavar="DIR", help="where the script runs (default: the current directory)"
    )


def _report_options(p, overlay: bool = True) -> None:
    p.add_argument(
        "--html",
        metavar="PATH",
        help="also write a self-contained HTML report here (plots, "
        "alignment table, findings with their repairs); never over an existing input",
    )
    if overlay:
        p.add_argument(
            "--model-explorer",
            metavar="PATH",
            help="also write the per-node divergence of the "
            "converted model as Google Model Explorer custom node data (JSON) here",
        )


def build_parser() -> argparse.ArgumentParser:
    from convlint.analyzers.app.requests import CheckRequest, TrainRequest

    p = _Parser(prog="convlint", description="A linter for deep-learning model conversions and "
                "training: finds, localizes and repairs silent faults.")
    p.add_argument("--version", action="version", version=f"convlint {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    d = sub.add_parser("diff", help="check that a converted model computes what its source does",
                       description="Run SOURCE and TARGET on the same inputs, natively and through "
                       "Apache TVM, and compare their outputs.")
    d.add_argument(
        "source",
        help="the original model (.keras .h5 .onnx .tflite .pt2 .pt, or a SavedModel directory)",
    )
    d.add_argument("target", help="the converted model")
    d.add_argument(
        "--format", choices=FORMATS, default="text", help="output format (default: text)"
    )
    _diff_options(d)
    d.add_argument(
        "--repair",
        action="store_true",
        help="repair what localization found into a new file and verify it by checking again",
    )
    d.add_argument(
        "--repaired-output",
        "--output",
        dest="output",
        metavar="PATH",
        help="where --repair writes the repaired model (default: <target stem>.repaired.<ext>); "
        "--output is its older name, kept as an alias (the report's path is --output-file)",
    )
    d.add_argument("--calibration", metavar="PATH",
                   help="calibration data (.npy, .npz or a folder of images, preprocessed like "
                   "--inputs) with which --repair re-quantizes a full-integer target (CL205)")
    d.add_argument(
        "--save-capture",
        metavar="PATH",
        help="write the check's runs and the per-layer capture here (npz + JSON, no pickle), "
        "for localization without the models (docs/architecture.md, runs.py)",
    )
    d.add_argument(
        "--unsafe-load",
        action="store_true",
        help="allow Keras models that carry Python code (Lambda layers); only for trusted files",
    )
    d.add_argument(
        "--verbose", "-v", action="store_true", help="show info findings, TVM routes and progress"
    )
    d.add_argument("--output-file", metavar="PATH", help="write the report here instead of stdout")
    _report_options(d)
    d.set_defaults(func=cmd_diff)

    c = sub.add_parser(
        "check",
        help="lint a project: conversion scripts and model pairs (CI mode)",
        description="Run the static script rules on the scripts under PATHS (Python, "
        "shell scripts and Makefiles with tf2onnx command lines; directories are searched) "
        "and the conversion check on the model pairs of the project configuration "
        "([tool.convlint] in pyproject.toml, or convlint.toml); with --train, also the training "
        "check of the training scripts. Flags override the config.",
    )
    c.add_argument(
        "paths", nargs="*", metavar="PATH", help="scripts or directories (default: the project)"
    )
    c.add_argument(
        "--format", choices=CHECK_FORMATS, default="text", help="output format (default: text)"
    )
    c.add_argument(
        "--config",
        metavar="FILE",
        help="the config file (default: the nearest convlint.toml, "
        "or pyproject.toml with [tool.convlint])",
    )
    c.add_argument(
        "--select",
        type=_codes,
        metavar="CODES",
        help="only these rules or prefixes, e.g. CL4,CL100",
    )
    c.add_argument("--ignore", type=_codes, metavar="CODES", help="never these rules or prefixes")
    c.add_argument("--jobs", "-j", metavar="N",
                   help=f"check model pairs in N parallel worker processes "
                   f"(default {CheckRequest.jobs})")
    c.add_argument(
        "--no-cache", action="store_true", help="re-check pairs even when nothing changed"
    )
    c.add_argument("--no-tvm", action="store_true", help="skip the TVM cross-check of pairs")
    c.add_argument(
        "--train",
        action="store_true",
        default=None,
        help="also run the training check on the training scripts (the config's train-scripts, "
        "else the scripts under PATHS that train a model); needs --allow-exec (config: train "
        "= true)",
    )
    c.add_argument("--allow-exec", action="store_true", default=None,
                   help="consent to run the training scripts (config: allow-exec = true)")
    c.add_argument("--baseline", metavar="FILE",
                   help="compare the pairs with this stored run: list regressions, improvements "
                   "and unchanged pairs; a pair fails the run only by regressing")
    c.add_argument("--update-baseline", action="store_true",
                   help="write this run's pairs to the --baseline file (created if missing)")
    c.add_argument("--changed-since", metavar="GIT_REF",
                   help="check only the pairs whose source, target or inputs changed since this "
                   "git ref (git diff, plus untracked files); list the others as skipped")
    c.add_argument(
        "--executor",
        choices=("local", "ray"),
        help="where pairs are checked: local worker processes (the default) or one Ray task "
        "per pair (needs convlint[ray]; a local Ray of --jobs CPUs unless --ray-address)",
    )
    c.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="with --executor ray: the Ray cluster to run on (host:port of `ray start --head`)",
    )
    c.add_argument("--exit-zero", action="store_true", help="exit 0 even when errors are found")
    c.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="show info findings, clean reports and progress",
    )
    c.add_argument("--output-file", metavar="PATH", help="write the report here instead of stdout")
    _report_options(c)
    c.set_defaults(func=cmd_check)

    t = sub.add_parser(
        "trace",
        help="run a conversion script with instruments and check what it converted",
        description="Run SCRIPT in a subprocess with the converters wrapped, capture each "
        "conversion (source model, flags, output, call site), check each pair, map the "
        "findings to the converter call, and verify the suggested rewrites by tracing the "
        "rewritten script (its writes redirected to a temporary folder).",
    )
    _script_options(
        t, "the conversion script", "the interpreter that runs the script (default: convlint's)"
    )
    t.add_argument("--no-verify-fix", action="store_true",
                   help="do not trace the rewritten script to verify the suggested rewrites")
    t.add_argument("--write-fixed", metavar="PATH", help="write the verified rewritten script here")
    t.add_argument("--keep-outputs", action="store_true",
                   help="let the script write its outputs (the converted models) where it says; by "
                   "default they go to convlint's cache and the working folder is left as it was")
    t.add_argument(
        "--format", choices=FORMATS, default="text", help="output format (default: text)"
    )
    t.add_argument("--repair", action="store_true",
                   help="re-quantize a faulty full-integer conversion (CL205) on the calibration "
                   "samples the script's converter drew (captured), and verify it")
    t.add_argument("--calibration", metavar="PATH",
                   help="calibration data for --repair instead of the captured samples")
    _diff_options(t)
    t.add_argument("--unsafe-load", action="store_true",
                   help="allow captured Keras models that carry Python code (Lambda layers)")
    t.add_argument("--verbose", "-v", action="store_true", help="show info findings and progress")
    t.add_argument("--output-file", metavar="PATH", help="write the report here instead of stdout")
    _report_options(t)
    t.set_defaults(func=cmd_trace)

    tc = sub.add_parser(
        "train-check",
        help="run a training script with probes and find training faults",
        description="Run SCRIPT in a subprocess with probes attached (Keras Model.fit gets a "
        "callback; PyTorch models get forward and gradient hooks and optimizer-step hooks), "
        "record per-layer statistics while it trains, and report numerical errors, bad "
        "trends and set-up faults, each localized to a layer, the line that built it and the "
        "hyperparameter to change. Training stops early once a fault is certain. See "
        "docs/training.md.",
    )
    _script_options(
        tc,
        "the training script (.py)",
        "the interpreter that runs the script (default: convlint's; it must have convlint "
        "installed)",
    )
    tc.add_argument("--max-epochs", metavar="N",
                    help=f"cap every Keras fit at N epochs (default {TrainRequest.max_epochs})")
    tc.add_argument("--max-steps", metavar="N",
                    help=f"stop the script after N optimizer steps "
                    f"(default {TrainRequest.max_steps})")
    tc.add_argument(
        "--every",
        metavar="K",
        help="record every K-th step (default: Keras records about 120 steps of the run, "
        "PyTorch every step)",
    )
    tc.add_argument(
        "--verify-fix",
        action="store_true",
        help="apply each proposed fix to a copy of the script and rerun a short training in the "
        "same sandbox; a fix is verified when the symptom is gone and the metric improved",
    )
    tc.add_argument(
        "--verify-budget",
        metavar="SECONDS",
        help=f"seconds for all the --verify-fix reruns together "
        f"(default {TrainRequest.verify_budget:g})",
    )
    tc.add_argument(
        "--write-fixed",
        metavar="PATH",
        help="with --verify-fix: write the verified fixed copy of the script here (never over it)",
    )
    tc.add_argument(
        "--format", choices=FORMATS, default="text", help="output format (default: text)"
    )
    tc.add_argument("--verbose", "-v", action="store_true", help="show info findings and progress")
    tc.add_argument("--output-file", metavar="PATH", help="write the report here instead of stdout")
    _report_options(tc, overlay=False)
    tc.set_defaults(func=cmd_train_check)

    _serve_arguments(
        sub.add_parser(
            "serve",
            help="run the language server (LSP over stdio, or TCP for debugging)",
            description=SERVE_DESCRIPTION,
        )
    )
    return p


SERVE_DESCRIPTION = (
    "Speak the Language Server Protocol over stdio (the default) or on a TCP port. Editors "
    "start it; see docs/server.md for settings and commands."
)


def _serve_arguments(s: argparse.ArgumentParser) -> argparse.ArgumentParser:
    s.add_argument("--stdio", action="store_true", help="use stdin/stdout (the default)")
    s.add_argument("--tcp", type=_address, metavar="[HOST:]PORT",
                   help="listen on a TCP port instead, for debugging")
    s.add_argument(
        "--prepare",
        action="store_true",
        help="do not serve: exit at once (kept for installers that still run it; the server "
        "keeps no start-up cache any more, see docs/server.md)",
    )
    return s


def serve_main(argv: list) -> int:
    """``convlint serve``: stdout belongs to the protocol, so nothing else may print there."""
    from convlint.analyzers.errors import ConvlintError

    # the serve command's parser alone: the whole CLI's takes ~10 ms to build, on every editor start
    args = _serve_arguments(
        _Parser(prog="convlint serve", description=SERVE_DESCRIPTION)
    ).parse_args(argv)
    if args.prepare:
        if args.tcp:
            raise ConvlintError("--prepare does not serve; drop --tcp")
        # nothing to prepare: the start-up cache it filled is gone (docs/server.md, Start-up)
        return 0
    import gc

    # no cyclic collection while the server starts: importing lsprotocol makes ~100,000 objects that
    # live as long as the server, and the collections their allocation triggers walk them all again
    # and again (~15% of a start) for next to no garbage; serve() freezes them and turns it back on
    gc.disable()
    from convlint.server.lsp.server import serve

    return serve(args.tcp)


def _diff_options(d) -> None:
    """The conversion-check options shared by diff and trace."""
    from convlint.analyzers.app.requests import DiffRequest as R

    d.add_argument("--num-inputs", metavar="N",
                   help=f"number of seeded random inputs (default: {R.num_inputs})")
    d.add_argument(
        "--inputs",
        metavar="PATH",
        help="inputs from a .npy (one input), a .npz (arrays named by input) or a folder of images",
    )
    d.add_argument(
        "--scale",
        help=f"image preprocessing: multiply pixels by this (default {R.scale:g})",
    )
    d.add_argument(
        "--mean",
        type=_floats,
        help="image preprocessing: subtract this, per channel (e.g. 0.485,0.456,0.406)",
    )
    d.add_argument(
        "--std", type=_floats, help="image preprocessing: then divide by this, per channel"
    )
    d.add_argument(
        "--input-shape",
        metavar="SHAPES",
        help="fix input shapes, e.g. 'input:1x3x224x224' (needed for TorchScript sources)",
    )
    d.add_argument(
        "--atol",
        help=f"absolute tolerance (default {R.atol:g}); an element fails when beyond both atol "
        f"and rtol",
    )
    d.add_argument("--rtol", help=f"relative tolerance (default {R.rtol:g})")
    d.add_argument("--seed", help=f"seed of the random inputs (default {R.seed})")
    d.add_argument(
        "--no-tvm", action="store_true", help="skip the TVM cross-check (faster, less certain)"
    )
    d.add_argument(
        "--no-localize",
        action="store_true",
        help="on divergence, skip the staged localization (layer, weights, converter settings)",
    )


def _diff_request(args, source: str = "", target: str = ""):
    """The check options diff and trace share, as a DiffRequest (which owns their defaults)."""
    from convlint.analyzers.app import DiffRequest
    from convlint.analyzers.differential.inputs import parse_shape_arg

    return _request(DiffRequest, dict(
        source=source, target=target, num_inputs=args.num_inputs, seed=args.seed,
        atol=args.atol, rtol=args.rtol, inputs=args.inputs, scale=args.scale, mean=args.mean,
        std=args.std,
        input_shapes=parse_shape_arg(args.input_shape) if args.input_shape else {},
        use_tvm=not args.no_tvm, localize=not args.no_localize,
        repair=getattr(args, "repair", False), output=getattr(args, "output", None),
        unsafe_load=args.unsafe_load, calibration=getattr(args, "calibration", None),
        save_capture=getattr(args, "save_capture", None)))


def _request(cls, values: dict):
    """A use-case request from the command line's values: None is "not given" (the request has
    the default), and the request judges every value (the same way it judges the server's)."""
    from convlint.analyzers.errors import ConvlintError

    try:
        return cls.from_dict(values)
    except ConvlintError as e:  # name the flag: "num_inputs: ..." -> "--num-inputs: ..."
        name, sep, rest = e.message.partition(": ")
        if sep and name in values:
            raise ConvlintError(f"--{name.replace('_', '-')}: {rest}", hint=e.hint) from None
        raise


def cmd_check(args) -> tuple:
    from convlint.analyzers import app

    # None is "not given": the request (or the project configuration) has the default
    req = _request(app.CheckRequest, dict(
        paths=tuple(args.paths), config=args.config, select=args.select, ignore=args.ignore,
        jobs=args.jobs, use_cache=not args.no_cache, use_tvm=not args.no_tvm, train=args.train,
        allow_exec=args.allow_exec, changed_since=args.changed_since, baseline=args.baseline,
        update_baseline=args.update_baseline, executor=args.executor,
        ray_address=args.ray_address))
    return app.check(req, progress=args.progress), {}


def cmd_trace(args) -> tuple:
    from convlint.analyzers import app

    d = _diff_request(args)
    req = _request(app.TraceRequest, dict(
        script=args.script, allow_exec=args.allow_exec, timeout=args.timeout,
        python=args.python, cwd=args.cwd, args=tuple(args.script_args),
        verify_fixes=not args.no_verify_fix, write_fixed=args.write_fixed,
        memory_mb=args.memory_limit, keep_outputs=args.keep_outputs, atol=d.atol, rtol=d.rtol,
        num_inputs=d.num_inputs, seed=d.seed, use_tvm=d.use_tvm, localize=d.localize,
        unsafe_load=d.unsafe_load, repair=args.repair))
    return app.trace(req, d, progress=args.progress), {}


def cmd_train_check(args) -> tuple:
    from convlint.analyzers import app
    from convlint.analyzers import config as C
    from convlint.analyzers.report.policy import apply as apply_policy

    cfg = C.load(C.find_config(os.getcwd()))
    req = _request(app.TrainRequest, dict(
        script=args.script,
        allow_exec=args.allow_exec,
        max_epochs=args.max_epochs,
        max_steps=args.max_steps,
        timeout=args.timeout,
        every=args.every,
        python=args.python,
        cwd=args.cwd,
        args=tuple(args.script_args),
        memory_mb=args.memory_limit,
        verify_fix=args.verify_fix or bool(args.write_fixed),
        write_fixed=args.write_fixed,
        verify_budget=args.verify_budget,
    ))
    rep = app.train(req, cfg.training, progress=args.progress)
    return apply_policy(rep, cfg), {}


def cmd_diff(args) -> tuple:
    from convlint.analyzers import app
    from convlint.analyzers.errors import ConvlintError
    from convlint.analyzers.subproc import limit_memory

    req = _diff_request(args, args.source, args.target)
    if req.save_capture and any(
        os.path.exists(req.save_capture) and os.path.samefile(req.save_capture, m)
        for m in (req.source, req.target)
    ):
        raise ConvlintError("--save-capture names one of the models; give a new file",
                            hint="e.g. --save-capture capture.npz")
    limit_memory()  # the models run in this process: one that allocates without bound fails here
    return app.diff(req, progress=args.progress), {"source": args.source, "target": args.target}


@contextlib.contextmanager
def _progress(verbose: bool, tty: bool):
    """Progress on stderr: a rich progress bar on a terminal (a bar once the amount of work is
    known, a spinner before; gone when the work is), one line per step with --verbose elsewhere,
    nothing otherwise (CI logs stay quiet)."""
    if tty and not os.environ.get("CONVLINT_NO_PROGRESS_BAR"):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        console = Console(file=sys.stderr, stderr=True)
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("starting", total=None)

            def show(msg: str) -> None:
                total, done = getattr(msg, "total", None), getattr(msg, "done", None)
                bar.update(
                    task,
                    description=_fit(str(msg), 60),
                    **({"total": total} if total else {}),
                    **({"completed": done} if done is not None else {}),
                )
                if verbose:
                    bar.console.print(f"convlint: {msg}", markup=False, highlight=False)

            yield show
    elif verbose:
        yield lambda msg: print(f"convlint: {msg}", file=sys.stderr, flush=True)
    else:
        yield None


def _fit(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "\u2026"


def error_report(message: str, rule: str, source=None, target=None, script=None, command=None):
    from convlint.analyzers import rules as R
    from convlint.analyzers.report.findings import ConversionReport, Finding, ModelRef, ScriptReport

    r = R.get(rule) if rule in R.RULES else R.BAD_ARGUMENTS
    f = Finding(rule=r.code, severity="error", stage=r.stage, message=message)
    if script is not None:
        kind = {"trace": "trace", "train-check": "training"}.get(command, "script")
        return ScriptReport(script, "error", (f,), kind=kind)

    def ref(path):
        if not path:
            return None
        try:
            from convlint.analyzers.models.detect import detect_format

            return ModelRef(path, detect_format(path))
        except Exception:
            return ModelRef(path, "unknown")

    return ConversionReport(ref(source), ref(target), {"count": 0, "origin": "none"}, "error",
                            {"max_abs": None, "mean_abs": None, "cosine_min": None,
                             "top1_agreement": None}, (f,))


@contextlib.contextmanager
def _stdout_to_stderr():
    """Frameworks print to file descriptor 1; keep stdout for the report alone."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield os.fdopen(os.dup(saved), "w")
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _quiet_frameworks() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import warnings

    warnings.filterwarnings("ignore")


def main(argv: list | None = None) -> int:
    from convlint.analyzers.errors import ConvlintError

    argv = list(sys.argv[1:] if argv is None else argv)
    if _is_main_process():
        from convlint.analyzers.subproc import raise_on_sigterm

        # a CI cancel (SIGTERM) cleans up like Ctrl-C: no partial files, no stray scripts
        raise_on_sigterm()
    if argv[:1] == ["serve"]:
        try:
            return serve_main(argv[1:])
        except ConvlintError as e:
            print(f"convlint: error: {e}", file=sys.stderr)
            return 2
    fmt = "json" if _wants_json(argv) else "text"
    parser = build_parser()
    command = next((a for a in argv if not a.startswith("-")), None)
    # known before parsing, so an argument error is reported in the command's own document shape
    paths: dict = {
        "command": command,
        "script": "." if command in ("check", "trace", "train-check") else None,
    }
    try:
        args = parser.parse_args(argv)
        args.argv = argv  # the command line, for the HTML report's header
        if not getattr(args, "command", None):
            parser.print_help()
            return 2
        fmt = getattr(args, "format", fmt)
        paths = {
            "source": getattr(args, "source", None),
            "target": getattr(args, "target", None),
            "script": getattr(args, "script", None) or (getattr(args, "paths", None) or ["."])[0]
            if args.command in ("check", "trace", "train-check")
            else None,
            "command": args.command,
        }
        _quiet_frameworks()
        if getattr(args, "verbose", False):  # -v also lets native libraries' own log lines through
            os.environ.setdefault("CONVLINT_NATIVE_LOGS", "1")
            _engine_debug_log()
        _check_outputs(args)
        with _stdout_to_stderr() as out:
            with _progress(getattr(args, "verbose", False), sys.stderr.isatty()) as args.progress:
                report, _ = args.func(args)
            text = _render(report, fmt, getattr(args, "verbose", False),
                           out.isatty() and not os.environ.get("NO_COLOR"))
            inputs = _inputs(args)
            _emit(text, getattr(args, "output_file", None), out, inputs)
            _write_extras(args, report, inputs)
            out.close()
        if getattr(args, "exit_zero", False) and report.exit_code == 1:
            return 0  # --exit-zero: findings never fail the run; "could not analyse" still does
        return report.exit_code
    except KeyboardInterrupt:
        print("convlint: interrupted", file=sys.stderr)
        return 2
    except Exception as e:
        from convlint.analyzers.extras import as_user_error

        # a ConvlintError, or the import of an extra that is not installed: the user's to fix
        user = as_user_error(e)
        if user is not None:
            msg = user.message + (f". {user.hint[0].upper()}{user.hint[1:]}" if user.hint else "")
            rule = user.rule
        else:  # a convlint bug: say so, never a raw framework traceback
            if os.environ.get("CONVLINT_DEBUG"):
                raise
            msg = (
                f"internal error: {type(e).__name__}: {' '.join(str(e).split())[:500]}. This is "
                f"a convlint bug; rerun with CONVLINT_DEBUG=1 for the traceback and report it"
            )
            rule = "CL009"
        report = error_report(
            msg,
            rule,
            paths.get("source"),
            paths.get("target"),
            paths.get("script"),
            paths.get("command"),
        )
        _emit_error(report, fmt, msg, paths.get("command"))
        return 2


def _engine_debug_log() -> None:
    """-v: the engine's debug log (what it tolerated and went on from) on stderr."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("convlint: debug: %(name)s: %(message)s"))
    logger = logging.getLogger("convlint")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


def _is_main_process() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _render(report, fmt: str, verbose: bool, color: bool) -> str:
    from convlint.analyzers.report import ci
    from convlint.analyzers.report.render import to_json, to_text

    if fmt in ("sarif", "github", "junit"):
        return {"sarif": ci.to_sarif, "github": ci.to_github, "junit": ci.to_junit}[fmt](report)
    return to_json(report) if fmt == "json" else to_text(report, verbose=verbose, color=color)


def _emit(text: str, output_file: str | None, out, inputs: tuple = ()) -> None:
    if output_file:
        from convlint.analyzers.report.io import write_new_file

        write_new_file(output_file, text + "\n", protect=inputs, report=True)
        print(f"convlint: report written to {output_file}", file=sys.stderr)
    else:
        out.write(text + "\n")
        out.flush()


def _inputs(args) -> tuple:
    return tuple(
        p
        for p in (
            getattr(args, "source", None),
            getattr(args, "target", None),
            getattr(args, "script", None),
            *(getattr(args, "paths", None) or ()),
        )
        if p
    )


def _check_outputs(args) -> None:
    """Refuse a bad report path before the work, not after it."""
    from convlint.analyzers.report.io import check_output_path

    inputs = _inputs(args)
    for key in ("output_file", "html", "model_explorer"):
        if getattr(args, key, None):
            check_output_path(getattr(args, key), protect=inputs, report=True)


def _write_extras(args, report, protect: tuple) -> None:
    """--html and --model-explorer: written like the report (atomically, never over ``protect``,
    the inputs)."""
    from convlint.analyzers.report.io import write_new_file

    if getattr(args, "html", None):
        import shlex

        from convlint.analyzers.report.html import to_html

        when = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        command = shlex.join(["convlint", *args.argv])
        write_new_file(args.html, to_html(report, command=command, when=when, path=args.html),
                       protect=protect, report=True)
        print(f"convlint: HTML report written to {args.html}", file=sys.stderr)
    if getattr(args, "model_explorer", None):
        import json

        from convlint.analyzers.models.explorer_ids import node_ids
        from convlint.analyzers.report.overlay import overlays

        found = overlays(report, node_ids)
        if not found:
            print(
                f"convlint: no per-layer errors to overlay (every pair agrees, or localization "
                f"did not run); {args.model_explorer} not written",
                file=sys.stderr,
            )
        for conv, data in found:
            path = args.model_explorer
            if len(found) > 1:  # one file per converted model: name.<target stem>.json
                stem, ext = os.path.splitext(path)
                target_stem = os.path.splitext(os.path.basename(conv["target"]["path"]))[0]
                path = f"{stem}.{target_stem}{ext or '.json'}"
            write_new_file(path, json.dumps(data, indent=1) + "\n", protect=protect, report=True)
            print(
                f"convlint: Model Explorer node data for {conv['target']['path']} written to "
                f"{path} (open the converted model in Model Explorer, then load this file as "
                f"custom node data)",
                file=sys.stderr,
            )
            _write_sync(conv, path, protect)


def _write_sync(conv: dict, overlay_path: str, protect: tuple) -> None:
    """Beside the overlay, ``<overlay stem>.sync.json``: the alignment as Model Explorer's
    split-pane sync mapping (source on the left, the converted model on the right)."""
    import json

    from convlint.analyzers.models.explorer_ids import node_ids
    from convlint.analyzers.report.io import write_new_file
    from convlint.analyzers.report.sync import sync_mapping

    src, tgt = conv.get("source") or {}, conv.get("target") or {}
    mapping = sync_mapping(conv, node_ids(src.get("path"), src.get("format")),
                           node_ids(tgt.get("path"), tgt.get("format")))
    if mapping is None:
        return
    stem, ext = os.path.splitext(overlay_path)
    path = f"{stem}.sync{ext or '.json'}"
    write_new_file(path, json.dumps(mapping, indent=1) + "\n", protect=protect, report=True)
    print(
        f"convlint: Model Explorer sync mapping written to {path} (open the source and the "
        f"converted model side by side, then upload this file as the split pane's sync mapping)",
        file=sys.stderr,
    )


def _emit_error(report, fmt: str, msg: str, command: str | None = None) -> None:
    from convlint.analyzers.report.render import to_json

    if command == "check":  # the check document holds a list of reports, even for one error
        from convlint.analyzers.report.findings import CheckReport

        report = CheckReport((report,))

    if fmt == "json":
        sys.stdout.write(to_json(report) + "\n")
        sys.stdout.flush()
    else:
        print(f"convlint: error: {msg}", file=sys.stderr)


def _wants_json(argv: list) -> bool:
    for i, a in enumerate(argv):
        if a == "--format=json" or (
            a == "--format" and i + 1 < len(argv) and argv[i + 1] == "json"
        ):
            return True
    return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
