"""``convlint check``: everything a project asks to be checked, as one ``CheckReport``.

In: paths, a ``Config`` and options. Scripts found under the paths get the static rules; the
config's model pairs get the conversion check, in parallel worker processes (``jobs``), or as
Ray tasks with ``executor="ray"`` (analyzers/ray_executor.py), each cached on disk as it finishes
by the content hash of both models and the options, so an unchanged or interrupted run's rerun
only reads what is done. Training scripts (opt-in: ``train``, with consent to execute) get train-check,
cached by the content of the script and the Python files beside it. With ``changed_since`` only
the pairs whose files git says changed are checked (the rest are listed as skipped); with a
``baseline`` the pairs are compared with a stored run (analyzers/baseline.py). Out: a
``CheckReport`` with the policy (select, ignore, severity) applied.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

from convlint import __version__
from convlint.analyzers import defaults as D
from convlint.analyzers import rules as R
from convlint.analyzers.cache import engine_fingerprint
from convlint.analyzers.config import Config, Pair
from convlint.analyzers.errors import ConvlintError
from convlint.analyzers.report import policy
from convlint.analyzers.report.findings import CheckReport, ConversionReport, ScriptReport

log = logging.getLogger(__name__)


@dataclass
class CheckOptions:
    paths: list
    config: Config
    jobs: int = 1
    use_cache: bool = True
    atol: float = D.ATOL
    rtol: float = D.RTOL
    num_inputs: int = D.NUM_INPUTS
    seed: int = D.SEED
    use_tvm: bool = True
    train: bool = False       # run the training checks too (opt-in)
    allow_exec: bool = False  # consent to run scripts (the config's allow-exec, or --allow-exec)
    train_timeout: float = D.SCRIPT_TIMEOUT
    changed_since: str | None = None  # a git ref: check only the pairs whose files changed since
    baseline: str | None = None       # a baseline file to compare the pairs with
    update_baseline: bool = False     # write this run's pairs to ``baseline``
    executor: str = "local"           # "local" (a process pool of ``jobs``) or "ray" (ray_executor)
    ray_address: str | None = None    # the Ray cluster to use; None: a local Ray of ``jobs`` CPUs


def run_check(opts: CheckOptions, progress: Callable | None = None) -> CheckReport:
    from convlint.analyzers import baseline as B
    from convlint.analyzers.scripts.check import analyze_file
    from convlint.analyzers.scripts.discover import discover, discover_training

    progress = progress or (lambda m: None)
    cfg = opts.config
    if opts.executor == "ray":
        from convlint.analyzers import ray_executor

        ray_executor.require()
    elif opts.executor != "local":
        raise ConvlintError(f"unknown executor {opts.executor!r}: expected local or ray", rule=R.BAD_ARGUMENTS.code)
    root = Path(cfg.path).parent if cfg.path else Path.cwd()
    old = _baseline_before(opts)
    pairs, skipped = _changed_pairs(cfg.pairs, root, opts.changed_since)
    scripts = discover(opts.paths, cfg.exclude) if opts.paths else []
    training = []
    if opts.train:
        from convlint.analyzers.subproc import require_consent

        require_consent(opts.allow_exec, "the training checks run the training scripts, which executes their code",
                        hint="pass --allow-exec, or set allow-exec = true in the config, if you trust them")
        training = discover_training(opts.paths, cfg.exclude, cfg.train_scripts)
    total = len(scripts) + len(pairs) + len(training)
    reports = []
    for i, s in enumerate(scripts):
        reports.append(policy.apply(analyze_file(s), cfg))
        progress(Step(f"script {s}: analysed", i + 1, total))
    checked = [policy.apply(r, cfg) for r in _pairs(opts, pairs, progress, len(scripts), total)]
    reports += checked
    if training:
        reports += [policy.apply(r, cfg)
                    for r in _training(training, opts, progress, len(scripts) + len(pairs), total)]
    extra: dict = {"config": cfg.path}
    if opts.changed_since is not None:
        why = f"no file changed since {opts.changed_since}"
        extra["skipped"] = [{"pair": B.pair_key(p.source, p.target, root), "source": p.source,
                             "target": p.target, "reason": why} for p in skipped]
    comparison = None
    if opts.baseline:
        now = {B.pair_key(p.source, p.target, root): B.entry(r)
               for p, r in zip(pairs, checked, strict=True)}
        kept = [B.pair_key(p.source, p.target, root) for p in skipped]
        if old is not None:
            comparison = dict(B.compare(old, now, kept), file=opts.baseline)
        if opts.update_baseline:
            B.save(opts.baseline, B.merged(old, now, kept), protect=_inputs(opts))
            extra["baseline_written"] = opts.baseline
    return CheckReport(tuple(reports), extra, baseline=comparison)


def _changed_pairs(pairs: list, root: Path, ref: str | None) -> tuple[list, list]:
    """(pairs to check, pairs skipped): with a ref, a pair is checked only when its source,
    target or inputs changed since it."""
    if ref is None:
        return list(pairs), []
    from convlint.analyzers import changes

    changed = changes.since(root, ref)
    check, skip = [], []
    for p in pairs:
        (check if any(changed(f) for f in (p.source, p.target, p.inputs) if f) else skip).append(p)
    return check, skip


def _inputs(opts: CheckOptions) -> tuple:
    """Every file the run reads: a baseline is never written over one of them."""
    cfg = opts.config
    return (*opts.paths, *([cfg.path] if cfg.path else []),
            *(f for p in cfg.pairs for f in (p.source, p.target, p.inputs) if f))


def _baseline_before(opts: CheckOptions) -> dict | None:
    """The stored baseline, read (and the path to update checked) before any work, so a bad
    file costs nothing. None when there is none yet (a first ``--update-baseline``)."""
    from convlint.analyzers import baseline as B

    if not opts.baseline:
        if opts.update_baseline:
            raise ConvlintError("--update-baseline needs --baseline FILE: the file to write",
                                rule=R.BAD_ARGUMENTS.code)
        return None
    if opts.update_baseline:
        from convlint.analyzers.report.io import check_output_path

        check_output_path(opts.baseline, protect=_inputs(opts), report=True)
    return B.load(opts.baseline, missing_ok=opts.update_baseline)


class Step(str):
    """A progress message that also says how much of the work is done (``done`` of ``total``);
    a consumer that only prints messages treats it as the string it is."""

    done: int | None
    total: int | None

    def __new__(cls, text: str, done: int | None = None, total: int | None = None):
        s = super().__new__(cls, text)
        s.done, s.total = done, total
        return s


def _pair_task(pair: Pair, opts: CheckOptions) -> dict:
    """Run in a worker process: check one pair, return its report as a dict (an ``error``
    report when it cannot be analysed)."""
    from convlint.analyzers import app

    n = pair.num_inputs if pair.num_inputs is not None else opts.num_inputs
    req = app.DiffRequest(pair.source, pair.target, num_inputs=n, seed=opts.seed,
                          atol=pair.atol if pair.atol is not None else opts.atol,
                          rtol=pair.rtol if pair.rtol is not None else opts.rtol,
                          inputs=pair.inputs, use_tvm=opts.use_tvm)
    return app.check_pair(req).to_dict()


def _digest(path: str) -> str:
    """The content hash of a pair's or script's file for a cache key (models/base.content_hash)."""
    from convlint.analyzers.models.base import content_hash

    return content_hash(path, missing_ok=True)


def cache_key(pair: Pair, opts: CheckOptions) -> str:
    parts = {"v": __version__, "engine": engine_fingerprint(), "pair": asdict(pair), "source": _digest(pair.source), "target": _digest(pair.target),
             "inputs": _digest(pair.inputs) if pair.inputs else None,
             "opts": [opts.atol, opts.rtol, opts.num_inputs, opts.seed, opts.use_tvm]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _pairs(opts: CheckOptions, pairs: list, progress, before: int = 0, total: int = 0) -> list:
    """A report per pair, in order."""
    cdir = check_cache_dir(opts.config)
    results: dict = {}
    todo = []
    count = _counter(progress, before, total)
    for i, pair in enumerate(pairs):
        if pair.pattern and not os.path.exists(pair.target):
            results[i] = _no_target(pair)
            count(f"pair {pair.label}: no target")
            continue
        key = cache_key(pair, opts) if opts.use_cache else None
        hit = cache_read(cdir, key) if key else None
        if hit is not None:
            results[i] = hit
            count(f"pair {pair.label}: unchanged (cached)")
            continue
        todo.append((i, pair, key))
    if todo and opts.executor == "ray":
        from convlint.analyzers import ray_executor

        where = f"the Ray cluster at {opts.ray_address}" if opts.ray_address else f"a local Ray of {opts.jobs} CPU(s)"
        progress(Step(f"checking {len(todo)} pair(s) as Ray tasks on {where}", None, total))
        results.update(ray_executor.run(todo, opts, _pair_task,
                                        lambda d, key, pair: _done(d, key, cdir, pair, count),
                                        lambda pair: _crashed(pair, count), opts.ray_address))
    elif todo:
        progress(Step(f"checking {len(todo)} pair(s) with {min(opts.jobs, len(todo))} worker(s)", None, total))
        results.update(_isolated(todo, opts, cdir, count))
    return [ConversionReport.from_dict(results[i]) for i in sorted(results)]


def _no_target(pair: Pair) -> dict:
    """A pattern's match with no target yet (not converted, or the template is wrong): one clear
    finding for that pair; the other pairs are checked."""
    from convlint.analyzers.report.findings import Finding

    f = Finding(R.BAD_ARGUMENTS.code, "error", "input",
                f"no target {pair.target} for {pair.source} (the source matched the pattern "
                f"{pair.pattern!r} of the config's pairs): convert it, or fix the target template")
    return ConversionReport.unanalysed(pair.source, pair.target, "error", f).to_dict()


def _counter(progress, before: int, total: int):
    """A progress function that counts the items it reports as done."""
    n = [before]

    def done(msg: str) -> None:
        n[0] += 1
        progress(Step(msg, n[0], total or None))

    return done


def _training(scripts: list, opts: CheckOptions, progress, before: int, total: int) -> list:
    """train-check each training script (each runs in its own subprocess; ``jobs`` at a time),
    cached by content like the pairs. A script that cannot be run gets its own error report."""
    from concurrent.futures import ThreadPoolExecutor

    cdir = check_cache_dir(opts.config)
    count = _counter(progress, before, total)
    out: dict = {}
    todo = []
    for i, s in enumerate(scripts):
        key = training_cache_key(s, opts) if opts.use_cache else None
        hit = cache_read(cdir, key, kind="training") if key else None
        if hit is not None:
            out[i] = ScriptReport.from_dict(hit)
            count(f"training {s}: unchanged (cached)")
        else:
            todo.append((i, s, key))

    def one(item):
        i, s, key = item
        rep = _train_one(s, opts)
        if key and rep.verdict in ("healthy", "faulty"):
            cache_write(cdir, key, rep.to_dict())
        count(f"training {s}: {rep.verdict}")
        return i, rep

    if todo:
        progress(Step(f"running {len(todo)} training script(s)", None, total))
        with ThreadPoolExecutor(max_workers=max(1, min(opts.jobs, len(todo)))) as ex:
            out.update(dict(ex.map(one, todo)))
    return [out[i] for i in sorted(out)]


def _train_one(script: str, opts: CheckOptions):
    from convlint.analyzers.report.findings import Finding
    from convlint.analyzers.training.check import TrainOptions, train_check

    topts = TrainOptions(allow_exec=True, timeout=opts.train_timeout)
    if opts.config.training is not None:
        topts.thresholds = opts.config.training
    try:
        return train_check(script, topts)
    except ConvlintError as e:
        rule = e.rule if e.rule in R.RULES else R.BAD_ARGUMENTS.code
        f = Finding(rule, "error", "input", e.message + (f". {e.hint}" if e.hint else ""))
        return ScriptReport(script, "error", (f,), kind="training")


def training_cache_key(script: str, opts: CheckOptions) -> str:
    """The script, every Python file beside it (what it most likely imports), the thresholds."""
    here = Path(script).resolve().parent
    files = sorted({Path(script).resolve(), *here.glob("*.py")})
    th = opts.config.training
    parts = {"v": __version__, "engine": engine_fingerprint(), "script": str(Path(script).resolve()), "files": [[f.name, _digest(str(f))] for f in files],
             "thresholds": asdict(th) if th is not None else None, "timeout": opts.train_timeout}
    return "train-" + hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _isolated(todo: list, opts: CheckOptions, cdir: Path, progress) -> dict:
    """Check pairs in worker processes (``opts.jobs`` of them), so a native crash (a segfault or
    abort in TVM, TensorFlow or onnxruntime) takes down a worker, never ``convlint check``. A
    pool breaks as a whole when one worker dies; the pairs it was running are then run again
    one per fresh worker, and the pair that kills its own worker gets a CL014 ``crash`` report
    (never cached)."""
    import multiprocessing as mp
    from concurrent.futures.process import BrokenProcessPool

    from convlint.analyzers.subproc import init_worker

    ctx = mp.get_context("spawn")
    out: dict = {}
    again = []
    with ProcessPoolExecutor(max_workers=max(1, min(opts.jobs, len(todo))), mp_context=ctx,
                             initializer=init_worker) as ex:
        futs = {ex.submit(_pair_task, pair, opts): (i, pair, key) for i, pair, key in todo}
        try:
            for fut in as_completed(futs):  # cached as each finishes: an interrupted run keeps it
                i, pair, key = futs[fut]
                try:
                    out[i] = _done(fut.result(), key, cdir, pair, progress)
                except BrokenProcessPool:
                    again.append((i, pair, key))
        except KeyboardInterrupt:
            _stop(ex)
            raise
    for i, pair, key in sorted(again, key=lambda t: t[0]):
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=init_worker) as ex:
            try:
                out[i] = _done(_result(ex, ex.submit(_pair_task, pair, opts)), key, cdir, pair, progress)
            except BrokenProcessPool:
                out[i] = _crashed(pair, progress)
    return out


def _result(ex, fut):
    """The future's result; interrupted (Ctrl-C, SIGTERM), the workers are stopped at once."""
    try:
        return fut.result()
    except KeyboardInterrupt:
        _stop(ex)
        raise


def _stop(ex) -> None:
    """Stop a pool's workers at once rather than wait for them (their temporary files go with
    their own SIGTERM handling)."""
    for proc in list((getattr(ex, "_processes", None) or {}).values()):
        proc.terminate()
    ex.shutdown(wait=False, cancel_futures=True)


def _crashed(pair: Pair, progress) -> dict:
    from convlint.analyzers.report.findings import Finding

    progress(f"pair {pair.label}: the worker process died")
    f = Finding(R.WORKER_CRASHED.code, "error", "runtime",
                f"the worker process checking {pair.source} -> {pair.target} died (a native crash in a "
                "framework or runtime, or the out-of-memory killer); the other pairs were checked")
    return ConversionReport.unanalysed(pair.source, pair.target, "crash", f).to_dict()


def _done(d: dict, key, cdir: Path, pair: Pair, progress) -> dict:
    progress(f"pair {pair.label}: {d['verdict']}")
    if key:
        cache_write(cdir, key, d)
    return d


def check_cache_dir(config: Config | None = None) -> Path:
    """Where conversion-check results are cached: shared by ``convlint check`` and the server."""
    from convlint.analyzers.cache import cache_dir

    root = Path(config.cache_dir) if config is not None and config.cache_dir else cache_dir()
    return root / "check"


def cache_read(cdir: Path, key: str, kind: str = "conversion") -> dict | None:
    """A cached report of ``kind`` (conversion, training), or None. An unreadable or corrupt entry
    is a miss (and is overwritten by the next write), never an error."""
    f = cdir / f"{key}.json"
    try:
        d = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(d, dict) or d.get("kind") != kind or "verdict" not in d:
        return None
    return d


def cache_write(cdir: Path, key: str, d: dict) -> None:
    """Store a report atomically (a reader never sees half a file). Reports that could not be
    analysed are not cached: they are retried."""
    if d.get("verdict") == "error":
        return
    try:
        cdir.mkdir(parents=True, exist_ok=True)
        tmp = cdir / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(d), encoding="utf-8")
        os.replace(tmp, cdir / f"{key}.json")
    except OSError:  # a read-only cache only costs speed
        log.debug("result cache not written to %s", cdir, exc_info=True)
