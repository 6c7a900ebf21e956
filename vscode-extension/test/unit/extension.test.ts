// Unit tests of the extension against the mocked `vscode` module (test/mock/vscode.ts) and a
// fake language client: settings -> initializationOptions, commands, Workspace Trust, the
// missing-convlint path, settings changes and the status item.

import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { beforeEach, describe, it } from "node:test";

import { ClientLike, ClientSpec, COMMANDS, Controller, NEEDS_TRUST } from "../../src/controller";
import { Bundle, PythonApiLike, ProbeResult, installCommands, neededExtras, prepareCommand, readBundle } from "../../src/python";
import { expandVariables, initializationOptions, readSettings } from "../../src/settings";

// eslint-disable-next-line @typescript-eslint/no-var-requires
const mock: typeof import("../mock/vscode") = require("vscode");
const { state } = mock;

const EXT_DIR = path.resolve(__dirname, "..", "..", "..");  // out/test/<kind>/

class FakeClient implements ClientLike {
  started = false;
  stopped = false;
  requests: { method: string; params: any; token?: unknown }[] = [];
  notifications: { method: string; params: any }[] = [];
  handlers = new Map<string, (p: any) => void>();
  answer: (method: string, params: any) => unknown = () => ({ reports: [] });
  constructor(readonly spec: ClientSpec) {}
  async start() { this.started = true; }
  async stop() { this.stopped = true; }
  async sendRequest(method: string, params: unknown, token?: any) {
    this.requests.push({ method, params, token });
    if (token?.isCancellationRequested) {
      throw new Error("cancelled");
    }
    return this.answer(method, params);
  }
  async sendNotification(method: string, params: unknown) { this.notifications.push({ method, params }); }
  onNotification(method: string, handler: (p: any) => void) {
    this.handlers.set(method, handler);
    return new mock.Disposable(() => this.handlers.delete(method));
  }
}

interface Harness { ctl: Controller; clients: FakeClient[]; probes: string[]; runs: string[][] }

const BUNDLE: Bundle = { wheel: "/ext/bundled/wheels/convlint-0.1.0-py3-none-any.whl", wheels: "/ext/bundled/wheels",
  libs: "/ext/bundled/libs", version: "0.1.0", python: "3.11", platform: "linux-x86_64" };

function harness(opts: { probe?: (py: string) => ProbeResult; python?: string | undefined; onRun?: () => void;
  exitCode?: (args: string[]) => number; bundle?: Bundle | null; now?: () => number } = {}): Harness {
  const clients: FakeClient[] = [];
  const probes: string[] = [];
  const runs: string[][] = [];
  const api: PythonApiLike | undefined = opts.python === undefined ? undefined : {
    environments: {
      getActiveEnvironmentPath: () => ({ path: opts.python as string }),
      resolveEnvironment: async (e: any) => ({ executable: { uri: { fsPath: typeof e === "string" ? e : e.path } } }),
    },
  };
  const context = { extensionUri: mock.Uri.file(EXT_DIR), subscriptions: [] } as any;
  const ctl = new Controller(context, {
    createClient: (spec) => { const c = new FakeClient(spec); clients.push(c); return c; },
    pythonApi: async () => api,
    probe: async (py) => { probes.push(py); return (opts.probe ?? (() => ({ convlint: "0.1.0", python: "3.11.7" })))(py); },
    run: async (cmd, args) => { runs.push([cmd, ...args]); opts.onRun?.(); return opts.exitCode?.(args) ?? 0; },
    bundle: () => opts.bundle === null ? undefined : opts.bundle ?? BUNDLE,
    now: opts.now,
  });
  return { ctl, clients, probes, runs };
}

const tick = () => new Promise((r) => setTimeout(r, 10));

beforeEach(() => state.reset());

describe("settings", () => {
  it("become the server's initializationOptions, with variables expanded", () => {
    const problems: string[] = [];
    const s = readSettings({ get: <T>(k: string) => ({
      severity: { cl411: "warning", CL100: "fatal" }, atol: 1e-3, run: "onSave", heavyChecks: false,
      interpreter: "${workspaceFolder}/.venv/bin/python", serverArgs: ["--log=${env:CL_TEST_VAR}"], timeout: -1,
    } as Record<string, unknown>)[k] as T | undefined }, { workspaceFolder: "/ws", env: { CL_TEST_VAR: "x" } }, problems);
    assert.equal(s.interpreter, "/ws/.venv/bin/python");
    assert.deepEqual(s.serverArgs, ["--log=x"]);
    assert.equal(s.timeout, 900, "a bad value falls back to the default");
    assert.ok(problems.some((p) => p.includes("convlint.timeout")));
    assert.ok(problems.some((p) => p.includes("CL100")));
    const o = initializationOptions(s, true, s.interpreter);
    assert.deepEqual(o, {
      enable: true, run: "onSave", severity: { CL411: "warning" }, atol: 1e-3, rtol: 1e-4, heavyChecks: false,
      trustedExecution: true, traceOnSave: false, tvm: true, timeout: 900, debounce: 0, watchFiles: false,
      interpreter: "/ws/.venv/bin/python",
    });
    const untrusted = initializationOptions({ ...s, traceOnSave: true }, false, s.interpreter);
    assert.equal(untrusted.trustedExecution, false);
    assert.equal(untrusted.traceOnSave, false);
    assert.equal("interpreter" in untrusted, false);
  });

  it("expand ${userHome}, ~ and unknown variables as VS Code does", () => {
    assert.equal(expandVariables("~/py/bin/python", { userHome: "/home/u" }), "/home/u/py/bin/python");
    assert.equal(expandVariables("${userHome}/x", { userHome: "/home/u" }), "/home/u/x");
    assert.equal(expandVariables("${workspaceFolderBasename}", { workspaceFolder: "/a/proj/" }), "proj");
    assert.equal(expandVariables("${unknown}/x", {}), "${unknown}/x");
    assert.equal(expandVariables("${env:NOPE_NOT_SET}", { env: {} }), "");
  });
});

describe("start-up", () => {
  it("registers every contributed command and starts the server exactly as documented", async () => {
    state.folders = ["/ws"];
    state.config = { atol: 0.01, severity: { CL411: "info" } };
    const h = harness({ python: "/usr/bin/python3.11" });
    await h.ctl.activate();
    const pkg = JSON.parse(fs.readFileSync(path.join(EXT_DIR, "package.json"), "utf8"));
    const contributed = pkg.contributes.commands.map((c: { command: string }) => c.command).sort();
    assert.deepEqual([...state.commands.keys()].sort(), contributed);
    assert.deepEqual(Object.values(COMMANDS).sort(), contributed);
    // the package's settings are the ones the extension reads
    const keys = Object.keys(pkg.contributes.configuration.properties).map((k) => k.replace(/^convlint\./, ""));
    for (const k of ["enable", "run", "severity", "atol", "rtol", "heavyChecks", "trustedExecution", "interpreter"]) {
      assert.ok(keys.includes(k), k);
    }
    assert.equal(h.clients.length, 1);
    const spec = h.clients[0].spec;
    assert.equal(spec.server.command, "/usr/bin/python3.11");
    assert.deepEqual(spec.server.args, ["-m", "convlint.server"]);
    assert.equal(spec.server.options.cwd, EXT_DIR, "never the workspace: it could shadow convlint");
    assert.equal(spec.server.options.env.PYTHONSAFEPATH, "1");
    assert.equal(spec.initializationOptions.atol, 0.01);
    assert.deepEqual(spec.initializationOptions.severity, { CL411: "info" });
    assert.equal(spec.initializationOptions.trustedExecution, true);
    assert.deepEqual(state.watchers.sort(), ["**/*.{onnx,tflite,keras,h5,hdf5,pt2,pt,pth,ts,jit,xml,pte}", "**/{pyproject.toml,convlint.toml}"]);
    assert.ok(h.clients[0].started);
    const out = state.outputs[0].lines.join("\n");
    assert.match(out, /convlint 0\.1\.0 on \/usr\/bin\/python3\.11 \(Python 3\.11\.7, from python extension\)/);
    assert.match(state.statusItems[0].detail, /convlint 0\.1\.0 on \/usr\/bin\/python3\.11/);
  });

  it("prefers convlint.interpreter, and falls back to python3 on PATH", async () => {
    state.config = { interpreter: "/opt/py/bin/python" };
    let h = harness({ python: "/usr/bin/python3.11" });
    await h.ctl.activate();
    assert.deepEqual(h.probes, ["/opt/py/bin/python"]);
    h.ctl.dispose();
    state.reset();
    h = harness({ python: undefined });
    await h.ctl.activate();
    assert.deepEqual(h.probes, [process.platform === "win32" ? "python" : "python3"]);
  });
});

describe("workspace trust", () => {
  it("an untrusted workspace gets static checks only and runs nothing of its own", async () => {
    state.trusted = false;
    state.folders = ["/ws"];
    state.config = { trustedExecution: true, traceOnSave: true };
    const h = harness({ python: "/ws/.venv/bin/python" });  // a checked-in venv: workspace code
    await h.ctl.activate();
    assert.deepEqual(h.probes, ["python3"], "the workspace's interpreter is not started");
    const o = h.clients[0].spec.initializationOptions;
    assert.equal(o.trustedExecution, false);
    assert.equal(o.traceOnSave, false);
    assert.match(state.statusItems[0].detail, /untrusted workspace: static checks only/);
    for (const id of [COMMANDS.checkWorkspace, COMMANDS.runCheck, COMMANDS.comparePair, COMMANDS.repair, COMMANDS.trainCheck]) {
      state.messages = [];
      await mock.commands.executeCommand(id);
      assert.deepEqual(state.messages.map((m) => m.text), [NEEDS_TRUST], id);
    }
    assert.deepEqual(h.clients[0].requests, [], "no heavy request reaches the server");
    // trust granted: a new server, told it may run heavy checks, with the selected interpreter
    state.grantTrust();
    await tick();
    await h.ctl.start();
    const last = h.clients[h.clients.length - 1];
    assert.ok(h.clients[0].stopped);
    assert.equal(last.spec.initializationOptions.trustedExecution, true);
    assert.equal(last.spec.server.command, "/ws/.venv/bin/python");
  });

  it("package.json declares limited support and restricts the settings that choose what runs", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(EXT_DIR, "package.json"), "utf8"));
    const u = pkg.capabilities.untrustedWorkspaces;
    assert.equal(u.supported, "limited");
    for (const k of ["convlint.interpreter", "convlint.trustedExecution", "convlint.serverArgs"]) {
      assert.ok(u.restrictedConfigurations.includes(k), k);
    }
  });
});

describe("convlint missing from the interpreter", () => {
  it("says so, serves the static checks from the bundle, installs the bundled wheel and restarts", async () => {
    let installed = false;
    state.answers = { "convlint is not installed in": "Install convlint" };
    const h = harness({ python: "/usr/bin/python3", probe: () => installed
      ? { convlint: "0.1.0", python: "3.11.7" } : { convlint: null, python: "3.11.7", error: "ModuleNotFoundError" },
      onRun: () => { installed = true; } });
    await h.ctl.activate();
    // meanwhile the server runs from the extension's own copy: static checks with any interpreter
    assert.equal(h.clients.length, 1);
    assert.equal(h.clients[0].spec.server.options.env.PYTHONPATH?.split(path.delimiter)[0], BUNDLE.libs);
    const m = state.messages.find((x) => x.level === "error")!;
    assert.match(m.text, /convlint is not installed in \/usr\/bin\/python3 \(Python 3\.11\.7, from python extension\)/);
    assert.match(m.text, /bundled copy/);
    assert.deepEqual(m.items, ["Install convlint", "Select interpreter", "Show output"]);
    assert.equal(state.statusItems[0].severity, mock.LanguageStatusSeverity.Warning);
    assert.equal(state.statusItems[0].text, "convlint: static checks only");
    await tick();
    await tick();
    // pip from the bundle alone (no index) at first, then the server's start-up cache
    const [offline] = installCommands("/usr/bin/python3", BUNDLE);
    assert.deepEqual(h.runs, [["/usr/bin/python3", ...offline.args],
      ["/usr/bin/python3", ...prepareCommand("/usr/bin/python3").args]]);
    assert.deepEqual(offline.args, ["-m", "pip", "install", "--find-links", BUNDLE.wheels, "--no-index", BUNDLE.wheel]);
    assert.deepEqual(prepareCommand("/usr/bin/python3").args, ["-m", "convlint", "serve", "--prepare"]);
    await tick();
    assert.equal(h.clients.length, 2, "restarted with the installed convlint");
    assert.equal(h.clients[1].spec.server.options.env.PYTHONPATH, process.env.PYTHONPATH);
  });

  it("asks before installing the frameworks the workspace's models need, and falls back to the index", async () => {
    state.files = ["/ws/m.keras", "/ws/m.tflite", "/ws/r.pt2", "/ws/x.onnx"];
    state.answers = { "convlint is not installed in": undefined, "need tensorflow": "Install with tensorflow" };
    const h = harness({ python: "/usr/bin/python3", probe: () => ({ convlint: null, python: "3.11.7",
      frameworks: { tensorflow: false, torch: true, tvm: false } }) });
    await h.ctl.activate();
    assert.equal(await h.ctl.install("/usr/bin/python3"), true);
    const ask = state.messages.find((x) => x.level === "warning")!;
    assert.match(ask.text, /need tensorflow, which \/usr\/bin\/python3 does not have/);
    assert.deepEqual(ask.items, ["Install with tensorflow", "Install convlint only"]);
    // torch is there already and is kept; an extra needs the index, so no offline attempt
    assert.deepEqual(h.runs[0], ["/usr/bin/python3", "-m", "pip", "install", "--find-links", BUNDLE.wheels,
      `${BUNDLE.wheel}[tensorflow]`]);
    assert.deepEqual(neededExtras(["a.onnx"], {}), []);
    assert.deepEqual(neededExtras(["a.h5", "b.pth", "saved/saved_model.pb"], { torch: false }), ["tensorflow", "torch"]);
    // no extras: the bundle alone first; when it cannot serve this Python, the index too
    const offlineFails = harness({ python: "/usr/bin/python3", probe: () => ({ convlint: null, python: "3.12.1" }),
      exitCode: (args) => args.includes("--no-index") ? 1 : 0 });
    state.files = [];
    assert.equal(await offlineFails.ctl.install("/usr/bin/python3"), true);
    assert.deepEqual(offlineFails.runs.map((r) => r.includes("--no-index")), [true, false, false]);
    // declined: nothing runs
    state.answers = { "need tensorflow": undefined };
    state.files = ["/ws/m.keras"];
    const declined = harness({ python: "/usr/bin/python3", probe: () => ({ convlint: null, python: "3.11.7" }) });
    assert.equal(await declined.ctl.install("/usr/bin/python3"), false);
    assert.deepEqual(declined.runs, []);
  });

  it("a failed preparation is logged and the server still starts; a failed pip install prepares nothing", async () => {
    let installed = false;
    state.answers = { "convlint is not installed in": "Install convlint" };
    const h = harness({ python: "/usr/bin/python3", probe: () => installed
      ? { convlint: "0.1.0", python: "3.11.7" } : { convlint: null, python: "3.11.7", error: "ModuleNotFoundError" },
      onRun: () => { installed = true; }, exitCode: (args) => args.includes("--prepare") ? 1 : 0 });
    await h.ctl.activate();
    await tick();
    await tick();
    assert.equal(h.runs.length, 2);
    assert.ok(!state.messages.some((m) => m.level === "error" && /pip install failed/.test(m.text)));
    assert.ok(state.outputs.some((o) => o.lines.some((l) => /start-up cache failed \(exit 1\)/.test(l))));
    await h.ctl.start();
    assert.ok(h.clients.length >= 1);

    state.messages = [];
    const failing = harness({ python: "/usr/bin/python3", probe: () => ({ convlint: null, python: "3.11.7", error: "x" }),
      exitCode: () => 1 });
    assert.equal(await failing.ctl.install("/usr/bin/python3"), false);
    assert.deepEqual(failing.runs, installCommands("/usr/bin/python3", BUNDLE).map((c) => [c.command, ...c.args]));
    assert.ok(state.messages.some((m) => /pip install failed \(exit 1\)/.test(m.text)));
  });

  it("a build without a bundle offers no install and starts no server", async () => {
    const h = harness({ python: "/usr/bin/python3", bundle: null,
      probe: () => ({ convlint: null, python: "3.11.7", error: "ModuleNotFoundError" }) });
    await h.ctl.activate();
    assert.equal(h.clients.length, 0);
    const m = state.messages.find((x) => x.level === "error")!;
    assert.match(m.text, /carries no convlint wheel/);
    assert.ok(!m.items.includes("Install convlint"));
    assert.equal(readBundle("/nonexistent"), undefined);
  });

  it("an interpreter that cannot run is named, with no install offer", async () => {
    state.config = { interpreter: "/nope/python" };
    const h = harness({ probe: () => ({ convlint: null, python: null, error: "/nope/python was not found" }) });
    await h.ctl.activate();
    const m = state.messages.find((x) => x.level === "error")!;
    assert.match(m.text, /cannot run \/nope\/python/);
    assert.ok(!m.items.includes("Install convlint"));
  });
});

describe("settings changes and commands", () => {
  it("a tolerance change is sent to the running server; an interpreter change restarts it", async () => {
    const h = harness({ python: "/usr/bin/python3" });
    await h.ctl.activate();
    state.setConfig({ atol: 0.5 });
    await tick();
    const n = h.clients[0].notifications.find((x) => x.method === "workspace/didChangeConfiguration");
    assert.ok(n);
    assert.equal(n.params.settings.convlint.atol, 0.5);
    assert.equal(h.clients.length, 1);
    state.setConfig({ interpreter: "/other/python" });
    await tick();
    await h.ctl.start();
    assert.equal(h.clients.length, 2);
    assert.ok(h.clients[0].stopped);
    assert.equal(h.clients[1].spec.server.command, "/other/python");
  });

  it("commands call the server's commands with cancellable progress", async () => {
    const h = harness({ python: "/usr/bin/python3" });
    await h.ctl.activate();
    const c = h.clients[0];
    state.activeFile = "/ws/convert.py";
    c.answer = () => ({ reports: [{ kind: "conversion", source: "/ws/m.keras", target: "/ws/m.tflite", verdict: "divergent",
      findings: [{ rule: "CL100", severity: "error", message: "outputs differ" }] }] });
    await mock.commands.executeCommand(COMMANDS.runCheck);
    assert.deepEqual(c.requests[0].params, { command: "convlint.runCheck", arguments: ["file:///ws/convert.py"] });
    assert.equal(state.progress[0].cancellable, true);
    assert.ok(state.messages.some((m) => m.level === "warning" && /1 of 1 with findings/.test(m.text)));
    assert.match(state.outputs[0].lines.join("\n"), /CL100 error: outputs differ/);
    // compare two models: two file pickers, then convlint.checkPair
    state.openDialog = [["/ws/m.keras"], ["/ws/m.tflite"]];
    await mock.commands.executeCommand(COMMANDS.comparePair);
    assert.deepEqual(c.requests[1].params, { command: "convlint.checkPair", arguments: [{ source: "/ws/m.keras", target: "/ws/m.tflite" }] });
    // a cancelled picker sends nothing
    state.openDialog = [undefined];
    await mock.commands.executeCommand(COMMANDS.comparePair);
    assert.equal(c.requests.length, 2);
    // repair of the active script, training check, report
    await mock.commands.executeCommand(COMMANDS.repair);
    await mock.commands.executeCommand(COMMANDS.trainCheck);
    await mock.commands.executeCommand(COMMANDS.showReport);
    await mock.commands.executeCommand(COMMANDS.checkWorkspace);
    assert.deepEqual(c.requests.slice(2).map((r) => r.params.command),
      ["convlint.repair", "convlint.trainCheck", "convlint.showReport", "convlint.checkWorkspace"]);
    // cancelling the progress cancels the request and shows no error
    state.cancelNextProgress = true;
    state.messages = [];
    await mock.commands.executeCommand(COMMANDS.checkWorkspace);
    assert.equal((c.requests[c.requests.length - 1].token as { isCancellationRequested: boolean }).isCancellationRequested, true);
    assert.deepEqual(state.messages.filter((m) => m.level === "error"), []);
    // show output and restart
    await mock.commands.executeCommand(COMMANDS.showOutput);
    assert.ok(state.outputs[0].shown > 0);
    await mock.commands.executeCommand(COMMANDS.restart);
    assert.equal(h.clients.length, 2);
    assert.ok(c.stopped);
  });

  it("the status item follows the server's convlint/status notifications", async () => {
    const h = harness({ python: "/usr/bin/python3" });
    await h.ctl.activate();
    const item = state.statusItems[0];
    const notify = h.clients[0].handlers.get("convlint/status")!;
    notify({ state: "checking", title: "convlint: checking m.tflite", stage: "localizing" });
    assert.equal(item.text, "convlint: localizing");
    assert.equal(item.busy, true);
    notify({ state: "idle", title: "convlint: checking m.tflite", result: "divergent", findings: 3 });
    assert.equal(item.text, "convlint: divergent, 3 findings");
    assert.equal(item.busy, false);
    assert.equal(item.severity, mock.LanguageStatusSeverity.Warning);
    notify({ state: "idle", title: "x", result: "equivalent", findings: 0 });
    assert.equal(item.severity, mock.LanguageStatusSeverity.Information);
  });

  it("a server that fails to start is reported, not thrown", async () => {
    const h = harness({ python: "/usr/bin/python3" });
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "cl-"));
    (h.ctl as any).deps.createClient = (spec: ClientSpec) => {
      const c = new FakeClient(spec);
      c.start = async () => { throw new Error("spawn EACCES"); };
      return c;
    };
    await h.ctl.activate();
    assert.equal(h.ctl.client, undefined);
    assert.ok(state.messages.some((m) => m.level === "error" && /did not start.*spawn EACCES/.test(m.text)));
    fs.rmSync(tmp, { recursive: true });
  });
});

describe("a crash loop is bounded", () => {
  it("restarts after unexpected stops, gives up at the 5th within 3 minutes, and Restart server counts again", async () => {
    let clock = 0;
    const h = harness({ python: "/usr/bin/python3", now: () => clock });
    await h.ctl.activate();
    const crash = () => h.clients[h.clients.length - 1].spec.onClosed();
    const minute = 60_000;
    // four stops within 3 minutes: each one restarts; nothing is shown to the user
    for (let i = 0; i < 4; i++) {
      assert.equal(crash(), "restart");
      clock += 30_000;
    }
    assert.equal(state.messages.length, 0);
    // the 5th within 3 minutes: no restart, the reason, and a button to show the log
    state.answers = { "stopped unexpectedly": "Show log" };
    assert.equal(crash(), "stop");
    const m = state.messages.find((x) => x.level === "error")!;
    assert.match(m.text, /stopped unexpectedly 5 times in 3 minutes/);
    assert.deepEqual(m.items, ["Show log", "Restart server"]);
    await tick();
    assert.equal(state.outputs[0].shown, 1, "Show log shows the output channel");
    assert.equal(h.ctl.client, undefined);
    assert.equal(state.statusItems[0].severity, mock.LanguageStatusSeverity.Error);
    // "Restart server" starts a new server and the count again: four more stops restart it
    await state.commands.get(COMMANDS.restart)!();
    assert.ok(h.ctl.client);
    state.messages = [];
    for (let i = 0; i < 4; i++) {
      assert.equal(crash(), "restart");
    }
    assert.equal(state.messages.length, 0);
    assert.equal(crash(), "stop");
  });

  it("stops spread wider than 3 minutes never stop the restarts (the clean twin)", async () => {
    let clock = 0;
    const h = harness({ python: "/usr/bin/python3", now: () => clock });
    await h.ctl.activate();
    for (let i = 0; i < 12; i++) {
      assert.equal(h.clients[0].spec.onClosed(), "restart");
      clock += 50_000;  // at most 4 stops in any 3 minutes
    }
    assert.equal(state.messages.length, 0);
    assert.ok(h.ctl.client);
  });
});

describe("multi-root workspaces", () => {
  it("send each folder's own settings, and again when they change", async () => {
    state.folders = ["/a", "/b"];
    state.config = { severity: { CL411: "warning" } };
    state.folderConfig = { "/b": { severity: { CL411: "info" } } };
    const h = harness({ python: "/usr/bin/python3" });
    await h.ctl.activate();
    const opts = h.clients[0].spec.initializationOptions as any;
    assert.deepEqual(opts.severity, { CL411: "warning" });
    assert.deepEqual(Object.keys(opts.folders), ["file:///a", "file:///b"]);
    assert.deepEqual(opts.folders["file:///a"].severity, { CL411: "warning" });
    assert.deepEqual(opts.folders["file:///b"].severity, { CL411: "info" });
    state.folderConfig["/b"] = { severity: { CL411: "error" } };
    state.setConfig({});
    await tick();
    const sent = h.clients[0].notifications.find((n) => n.method === "workspace/didChangeConfiguration")!;
    assert.deepEqual(sent.params.settings.convlint.folders["file:///b"].severity, { CL411: "error" });
  });

  it("the server is given scripts and Jupyter notebooks' Python cells", async () => {
    const h = harness({ python: "/usr/bin/python3" });
    await h.ctl.activate();
    assert.deepEqual(h.clients[0].spec.documentSelector, [{ scheme: "file", language: "python" },
      { scheme: "file", language: "shellscript" }, { notebook: "jupyter-notebook", language: "python" }]);
  });

  it("a single folder is sent no folders (its settings are the window's)", async () => {
    state.folders = ["/ws"];
    const h = harness({ python: "/usr/bin/python3" });
    await h.ctl.activate();
    assert.equal("folders" in h.clients[0].spec.initializationOptions, false);
  });
});
