// The extension's behaviour: start the server with the right interpreter, keep it told of the
// settings and of Workspace Trust, register the commands, show status and results.
//
// The language client is made by a factory, so the unit tests run this against a mocked
// `vscode` module and a fake client; extension.ts passes the real vscode-languageclient.

import * as vscode from "vscode";

import {
  Bundle, ServerCommand, Interpreter, ProbeResult, PythonApiLike, installCommands, neededExtras, prepareCommand,
  probe as realProbe, readBundle, resolveInterpreter, serverCommand,
} from "./python";
import { CRASH_WINDOW_MS, CrashGuard } from "./crashes";
import { ConvlintSettings, initializationOptions, needsRestart, readSettings } from "./settings";

export const MODEL_GLOB = "**/*.{onnx,tflite,keras,h5,hdf5,pt2,pt,pth,ts,jit,xml,pte}";
export const CONFIG_GLOB = "**/{pyproject.toml,convlint.toml}";

/** What the controller needs of a language client (vscode-languageclient's LanguageClient). */
export interface ClientLike {
  start(): Promise<void>;
  stop(): Promise<void>;
  sendRequest(method: string, params: unknown, token?: vscode.CancellationToken): Promise<unknown>;
  sendNotification(method: string, params: unknown): Promise<void>;
  onNotification(method: string, handler: (params: any) => void): vscode.Disposable;
}

export interface ClientSpec {
  server: ServerCommand;
  initializationOptions: Record<string, unknown>;
  /** Scripts by scheme and language; Jupyter notebooks' Python cells by notebook type (the server
   * syncs them as LSP 3.17 notebook documents). */
  documentSelector: ({ scheme: string; language: string } | { notebook: string; language: string })[];
  fileWatchers: vscode.FileSystemWatcher[];
  outputChannel: vscode.OutputChannel;
  /** The server stopped unexpectedly: "restart" it, or "stop" (a crash loop; the user was told). */
  onClosed(): "restart" | "stop";
}

export interface Deps {
  createClient(spec: ClientSpec): ClientLike;
  pythonApi(): Promise<PythonApiLike | undefined>;
  probe?(python: string, cwd: string): Promise<ProbeResult>;
  /** Runs a program to completion (the install offer); resolves with its exit code. */
  run?(command: string, args: string[], log: (s: string) => void): Promise<number>;
  /** What the .vsix carries (default: read from the extension's bundled/ folder). */
  bundle?(): Bundle | undefined;
  /** The clock of the crash-loop bound, in milliseconds (default: Date.now). */
  now?(): number;
}

export const NEEDS_TRUST = "convlint: this command loads the workspace's models or runs its scripts, so it needs a trusted workspace (Workspace Trust).";

/** Commands the extension contributes (package.json). The server's own commands
 * (convlint.runCheck, ...) are run through them with `workspace/executeCommand`. */
export const COMMANDS = {
  checkWorkspace: "convlint.editor.checkWorkspace",
  runCheck: "convlint.editor.runCheck",
  comparePair: "convlint.editor.comparePair",
  repair: "convlint.editor.repair",
  trainCheck: "convlint.editor.trainCheck",
  showReport: "convlint.editor.showReport",
  restart: "convlint.editor.restart",
  showOutput: "convlint.editor.showOutput",
} as const;

const MODEL_FILTERS = { "Models": ["onnx", "tflite", "keras", "h5", "hdf5", "pt2", "pt", "pth", "ts", "jit", "xml", "pte"], "All files": ["*"] };

type Report = { kind?: string; verdict?: string; findings?: { rule: string; severity: string; message: string }[];
  source?: string; target?: string; script?: string };

export class Controller implements vscode.Disposable {
  readonly output: vscode.OutputChannel;
  readonly status: vscode.LanguageStatusItem;
  client: ClientLike | undefined;
  interpreter: Interpreter | undefined;
  versions: ProbeResult | undefined;
  settings: ConvlintSettings;
  private disposables: vscode.Disposable[] = [];
  private clientDisposables: vscode.Disposable[] = [];
  private starting: Promise<void> | undefined;
  readonly crashes: CrashGuard;

  constructor(private readonly context: vscode.ExtensionContext, private readonly deps: Deps) {
    this.output = vscode.window.createOutputChannel("convlint");
    this.status = vscode.languages.createLanguageStatusItem("convlint.status", [
      { language: "python" }, { language: "shellscript" }]);
    this.status.name = "convlint";
    this.status.text = "convlint: starting";
    this.status.command = { title: "Show output", command: COMMANDS.showOutput };
    this.settings = this.readSettings();
    this.crashes = new CrashGuard(deps.now ?? Date.now);
  }

  get trusted(): boolean {
    return vscode.workspace.isTrusted;
  }

  get folders(): string[] {
    return (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
  }

  log(message: string): void {
    this.output.appendLine(`[convlint] ${message}`);
  }

  readSettings(): ConvlintSettings {
    const problems: string[] = [];
    const s = readSettings(vscode.workspace.getConfiguration("convlint"),
      { workspaceFolder: this.folders[0] }, problems);
    for (const p of problems) {
      this.log(p);
    }
    return s;
  }

  /** The options the server is given (at start and on a change): the window's settings and, in a
   * multi-root workspace, each folder's own (`folders`: folder URI -> options), so that a file is
   * checked with its own folder's settings. */
  serverOptions(s: ConvlintSettings, interpreter?: string): Record<string, unknown> {
    const opts = initializationOptions(s, this.trusted, interpreter);
    const folders = vscode.workspace.workspaceFolders ?? [];
    if (folders.length > 1) {
      const problems: string[] = [];
      opts.folders = Object.fromEntries(folders.map((f) => [f.uri.toString(), initializationOptions(
        readSettings(vscode.workspace.getConfiguration("convlint", f.uri), { workspaceFolder: f.uri.fsPath }, problems),
        this.trusted, interpreter)]));
      for (const p of problems) {
        this.log(p);
      }
    }
    return opts;
  }

  /** Register everything and start the server. */
  async activate(): Promise<void> {
    const reg = (id: string, fn: (...a: any[]) => unknown) =>
      this.disposables.push(vscode.commands.registerCommand(id, fn));
    reg(COMMANDS.checkWorkspace, () => this.checkWorkspace());
    reg(COMMANDS.runCheck, (uri?: vscode.Uri) => this.scriptCommand("convlint.runCheck", "checking the conversion", uri));
    reg(COMMANDS.comparePair, () => this.comparePair());
    reg(COMMANDS.repair, (uri?: vscode.Uri) => this.repair(uri));
    reg(COMMANDS.trainCheck, (uri?: vscode.Uri) => this.scriptCommand("convlint.trainCheck", "checking training", uri));
    reg(COMMANDS.showReport, (uri?: vscode.Uri) => this.showReport(uri));
    reg(COMMANDS.restart, () => { this.crashes.reset(); return this.restart(); });
    reg(COMMANDS.showOutput, () => this.output.show(true));
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration("convlint")) {
          void this.onSettingsChanged();
        }
      }),
      vscode.workspace.onDidGrantWorkspaceTrust(() => {
        this.log("the workspace is now trusted: heavy checks may run");
        void this.restart();  // the interpreter choice may change with trust
      }),
    );
    await this.start();
  }

  /** Start the server unless it runs (or is starting) already. */
  async start(): Promise<void> {
    if (this.client) {
      return;
    }
    if (this.starting) {
      return this.starting;
    }
    this.starting = this.doStart().finally(() => { this.starting = undefined; });
    return this.starting;
  }

  private async doStart(): Promise<void> {
    this.settings = this.readSettings();
    if (!this.settings.enable) {
      this.setStatus("convlint: disabled", "convlint.enable is off", vscode.LanguageStatusSeverity.Information);
      return;
    }
    const interp = await resolveInterpreter(this.settings.interpreter, this.trusted, this.folders,
      () => this.deps.pythonApi(), (m) => this.log(m));
    this.interpreter = interp;
    const cwd = this.context.extensionUri.fsPath;
    const probe = this.deps.probe ?? realProbe;
    const found = await probe(interp.path, cwd);
    this.versions = found;
    const bundle = this.bundle();
    let libs: string | undefined;
    let what = `convlint ${found.convlint} on ${interp.path} (Python ${found.python}, from ${interp.source})`;
    if (!found.convlint) {
      this.missing(interp, found, bundle);
      if (!found.python || !bundle) {
        return;
      }
      // the extension's own copy serves the static checks meanwhile (pure Python, any interpreter)
      libs = bundle.libs;
      what = `convlint ${bundle.version} (bundled with the extension) on ${interp.path} (Python ${found.python}); `
        + "static checks only until convlint is installed there";
    }
    this.log(`starting ${what}${this.trusted ? "" : "; untrusted workspace: static checks only"}`);
    const fileWatchers = [vscode.workspace.createFileSystemWatcher(MODEL_GLOB),
      vscode.workspace.createFileSystemWatcher(CONFIG_GLOB)];
    const client = this.deps.createClient({
      server: serverCommand(interp.path, this.settings.serverArgs, cwd, libs),
      initializationOptions: this.serverOptions(this.settings, interp.path),
      documentSelector: [{ scheme: "file", language: "python" }, { scheme: "file", language: "shellscript" },
        { notebook: "jupyter-notebook", language: "python" }],
      fileWatchers,
      outputChannel: this.output,
      onClosed: () => this.onServerClosed(client),
    });
    this.clientDisposables.push(...fileWatchers, client.onNotification("convlint/status", (p) => this.onStatus(p)));
    this.client = client;
    try {
      await client.start();
    } catch (e) {
      this.client = undefined;
      const msg = e instanceof Error ? e.message : String(e);
      this.log(`the server did not start: ${msg}`);
      this.setStatus("convlint: server failed", msg, vscode.LanguageStatusSeverity.Error);
      void vscode.window.showErrorMessage(`convlint: the server did not start with ${interp.path}: ${msg}`, "Show output")
        .then((a) => { if (a === "Show output") { this.output.show(true); } });
      return;
    }
    if (libs) {
      this.setStatus("convlint: static checks only", what, vscode.LanguageStatusSeverity.Warning);
    } else {
      this.setStatus("convlint", what + (this.trusted ? "" : " — untrusted workspace: static checks only"));
    }
  }

  /** The language client saw the server stop unexpectedly: restart it, unless this is the
   * 5th time within 3 minutes (then stop, say why, and offer the log). */
  onServerClosed(client: ClientLike): "restart" | "stop" {
    if (this.crashes.stopped()) {
      this.log(`the server stopped unexpectedly (${this.crashes.count} time(s) in the last 3 minutes); restarting it`);
      return "restart";
    }
    const minutes = CRASH_WINDOW_MS / 60000;
    const why = `the server stopped unexpectedly ${this.crashes.count} times in ${minutes} minutes, so it is `
      + "not restarted again. The log says why; fix that, then run \"convlint: Restart server\".";
    this.log(why);
    if (this.client === client) {
      this.client = undefined;
      for (const d of this.clientDisposables.splice(0)) {
        d.dispose();
      }
    }
    this.setStatus("convlint: server stopped", why, vscode.LanguageStatusSeverity.Error);
    void vscode.window.showErrorMessage(`convlint: ${why}`, "Show log", "Restart server").then((a) => {
      if (a === "Show log") {
        this.output.show(true);
      } else if (a === "Restart server") {
        void vscode.commands.executeCommand(COMMANDS.restart);
      }
    });
    return "stop";
  }

  bundle(): Bundle | undefined {
    return this.deps.bundle ? this.deps.bundle() : readBundle(this.context.extensionUri.fsPath);
  }

  private missing(interp: Interpreter, found: ProbeResult, bundle: Bundle | undefined): void {
    const where = found.python ? `${interp.path} (Python ${found.python}, from ${interp.source})` : interp.path;
    const why = found.python ? "convlint is not installed in" : "cannot run";
    this.log(`${why} ${where}: ${found.error ?? ""}`);
    this.setStatus("convlint: not installed", `${why} ${where}`, vscode.LanguageStatusSeverity.Error);
    const canInstall = found.python && bundle;
    const actions = canInstall ? ["Install convlint", "Select interpreter", "Show output"] : ["Select interpreter", "Show output"];
    const more = !found.python ? "" : bundle
      ? " Static checks run from the extension's bundled copy; install convlint there (from the extension, no index needed) to check models."
      : " This build of the extension carries no convlint wheel: install convlint into it yourself (see the README).";
    void vscode.window.showErrorMessage(`convlint: ${why} ${where}.${more}`, ...actions).then(async (a) => {
      if (a === "Install convlint") {
        await this.install(interp.path);
      } else if (a === "Select interpreter") {
        await vscode.commands.executeCommand("python.setInterpreter").then(undefined, () =>
          vscode.commands.executeCommand("workbench.action.openSettings", "convlint.interpreter"));
      } else if (a === "Show output") {
        this.output.show(true);
      }
    });
  }

  /** The workspace's model files (for the extras an install needs); at most 500. */
  private async modelFiles(): Promise<string[]> {
    try {
      const found = await vscode.workspace.findFiles(MODEL_GLOB, "**/{node_modules,.venv,.git}/**", 500);
      return found.map((u) => u.fsPath);
    } catch {
      return [];
    }
  }

  /** Install convlint from the extension's own wheel into the interpreter (the user clicked
   * "Install convlint"), with the extras the workspace's models need; asks again before it
   * downloads a framework. Then prepare the server's start-up cache and restart. */
  async install(python: string): Promise<boolean> {
    const bundle = this.bundle();
    if (!bundle) {
      void vscode.window.showErrorMessage("convlint: this build of the extension carries no convlint wheel; install convlint into the interpreter yourself (see the README).");
      return false;
    }
    let extras = neededExtras(await this.modelFiles(), this.versions?.frameworks);
    if (extras.length) {
      const all = `Install with ${extras.join(", ")}`;
      const a = await vscode.window.showWarningMessage(
        `convlint: the workspace has models that need ${extras.join(" and ")}, which ${python} does not have. `
        + "Installing them downloads them from your package index (several hundred MB).", { modal: true },
        all, "Install convlint only");
      if (!a) {
        return false;
      }
      if (a !== all) {
        extras = [];
      }
    }
    const run = this.deps.run ?? runProcess;
    this.output.show(true);
    const code = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `convlint: installing into ${python}` },
      async (progress) => {
        let installed = 1;
        for (const { command, args } of installCommands(python, bundle, extras)) {
          this.log(`running ${command} ${args.join(" ")}`);
          installed = await run(command, args, (s) => this.output.append(s));
          if (installed === 0) {
            break;
          }
        }
        if (installed === 0) {
          // the server's start-up cache, so that its first start is as quick as later ones; a failure
          // here costs only that (the server fills the cache itself), so it is logged and not shown
          progress.report({ message: "preparing the language server" });
          const prep = prepareCommand(python);
          this.log(`running ${prep.command} ${prep.args.join(" ")}`);
          const p = await run(prep.command, prep.args, (s) => this.output.append(s));
          if (p !== 0) {
            this.log(`preparing the server's start-up cache failed (exit ${p}); its first start compiles instead`);
          }
        }
        return installed;
      });
    if (code !== 0) {
      void vscode.window.showErrorMessage(`convlint: pip install failed (exit ${code}); see the output.`, "Show output")
        .then((a) => { if (a) { this.output.show(true); } });
      return false;
    }
    await this.restart();
    return true;
  }

  async stop(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    for (const d of this.clientDisposables.splice(0)) {
      d.dispose();
    }
    if (c) {
      try {
        await c.stop();
      } catch (e) {
        this.log(`stopping the server: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  async restart(): Promise<void> {
    this.log("restarting the server");
    await this.stop();
    await this.start();
  }

  private async onSettingsChanged(): Promise<void> {
    const before = this.settings;
    const after = this.readSettings();
    if (!this.client || needsRestart(before, after) || before.enable !== after.enable) {
      await this.restart();
      return;
    }
    this.settings = after;
    await this.client.sendNotification("workspace/didChangeConfiguration", {
      settings: { convlint: this.serverOptions(after, this.interpreter?.path) },
    });
  }

  setStatus(text: string, detail: string, severity = vscode.LanguageStatusSeverity.Information, busy = false): void {
    this.status.text = text;
    this.status.detail = detail;
    this.status.severity = severity;
    this.status.busy = busy;
  }

  /** The server's `convlint/status` notification: checking (with the stage) or the last result. */
  onStatus(p: { state?: string; title?: string; stage?: string; result?: string; findings?: number | null }): void {
    const title = String(p.title ?? "").replace(/^convlint:\s*/, "");
    if (p.state === "checking") {
      this.setStatus(`convlint: ${p.stage ?? "checking"}`, title, vscode.LanguageStatusSeverity.Information, true);
      return;
    }
    const n = typeof p.findings === "number" ? `, ${p.findings} finding${p.findings === 1 ? "" : "s"}` : "";
    const bad = p.result && !["equivalent", "clean", "healthy", "ok", "done"].includes(p.result);
    this.setStatus(`convlint: ${p.result ?? "idle"}${n}`, `last: ${title}`,
      bad ? vscode.LanguageStatusSeverity.Warning : vscode.LanguageStatusSeverity.Information, false);
  }

  // -- commands ----------------------------------------------------------------------------------

  private needClient(): ClientLike | undefined {
    if (!this.client) {
      void vscode.window.showErrorMessage("convlint: the server is not running; see the output.", "Show output")
        .then((a) => { if (a) { this.output.show(true); } });
    }
    return this.client;
  }

  private needTrust(): boolean {
    if (!this.trusted) {
      void vscode.window.showWarningMessage(NEEDS_TRUST);
      return false;
    }
    return true;
  }

  /** Run a server command with cancellable progress; cancelling sends `$/cancelRequest`. */
  async execute(command: string, args: unknown[], title: string): Promise<any> {
    const client = this.needClient();
    if (!client) {
      return undefined;
    }
    return vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `convlint: ${title}`, cancellable: true },
      async (_progress, token) => {
        try {
          return await client.sendRequest("workspace/executeCommand", { command, arguments: args }, token);
        } catch (e) {
          if (token.isCancellationRequested) {
            this.log(`${command}: cancelled`);
            return undefined;
          }
          const msg = e instanceof Error ? e.message : String(e);
          this.log(`${command}: ${msg}`);
          void vscode.window.showErrorMessage(`convlint: ${msg}`);
          return undefined;
        }
      });
  }

  private activeScript(uri?: vscode.Uri): vscode.Uri | undefined {
    const u = uri ?? vscode.window.activeTextEditor?.document.uri;
    if (!u || u.scheme !== "file") {
      void vscode.window.showWarningMessage("convlint: open a Python script first.");
      return undefined;
    }
    return u;
  }

  async checkWorkspace(): Promise<any> {
    if (!this.needTrust()) {
      return undefined;
    }
    const res = await this.execute("convlint.checkWorkspace", [], "checking the workspace");
    return this.summarize(res, "workspace");
  }

  async scriptCommand(command: string, title: string, uri?: vscode.Uri): Promise<any> {
    if (!this.needTrust()) {
      return undefined;
    }
    const u = this.activeScript(uri);
    if (!u) {
      return undefined;
    }
    const res = await this.execute(command, [u.toString()], `${title}: ${u.path.split("/").pop()}`);
    return this.summarize(res, u.path.split("/").pop() ?? "script");
  }

  async comparePair(): Promise<any> {
    if (!this.needTrust()) {
      return undefined;
    }
    const pair = await this.pickPair();
    if (!pair) {
      return undefined;
    }
    const res = await this.execute("convlint.checkPair", [pair], `comparing ${base(pair.source)} and ${base(pair.target)}`);
    if (res) {
      await this.summarize({ reports: [res] }, `${base(pair.source)} → ${base(pair.target)}`, pair);
    }
    return res;
  }

  async pickPair(): Promise<{ source: string; target: string } | undefined> {
    const source = await vscode.window.showOpenDialog({ canSelectMany: false, title: "convlint: the source model",
      openLabel: "Source model", filters: MODEL_FILTERS });
    if (!source?.length) {
      return undefined;
    }
    const target = await vscode.window.showOpenDialog({ canSelectMany: false, title: "convlint: the converted model",
      openLabel: "Converted model", filters: MODEL_FILTERS });
    if (!target?.length) {
      return undefined;
    }
    return { source: source[0].fsPath, target: target[0].fsPath };
  }

  async repair(uri?: vscode.Uri | { source: string; target: string }): Promise<any> {
    if (!this.needTrust()) {
      return undefined;
    }
    let arg: unknown;
    if (uri && "source" in uri) {
      arg = uri;
    } else {
      const u = (uri as vscode.Uri | undefined) ?? vscode.window.activeTextEditor?.document.uri;
      if (u && u.scheme === "file" && /\.(py|sh)$/.test(u.path)) {
        arg = u.toString();
      } else {
        arg = await this.pickPair();
        if (!arg) {
          return undefined;
        }
      }
    }
    return this.execute("convlint.repair", [arg], "repairing");
  }

  async showReport(uri?: vscode.Uri): Promise<any> {
    const u = this.activeScript(uri);
    if (!u) {
      return undefined;
    }
    const res = await this.execute("convlint.showReport", [u.toString()], "writing the report");
    if (res?.path) {
      this.log(`report: ${res.path} (JSON: ${res.json})`);
    }
    return res;
  }

  /** One line per report in the output, and a message with the overall result. */
  async summarize(res: any, what: string, pair?: { source: string; target: string }): Promise<any> {
    if (!res) {
      return res;
    }
    const reports: Report[] = Array.isArray(res.reports) ? res.reports : [];
    if (!reports.length) {
      const msg = res.message ?? "nothing to check";
      this.log(`${what}: ${msg}`);
      void vscode.window.showInformationMessage(`convlint: ${what}: ${msg}`);
      return res;
    }
    let bad = 0;
    for (const r of reports) {
      const name = r.target ? `${base(r.source ?? "")} → ${base(r.target)}` : base(r.script ?? what);
      const n = r.findings?.length ?? 0;
      if (!["equivalent", "clean", "healthy"].includes(String(r.verdict))) {
        bad += 1;
      }
      this.log(`${name}: ${r.verdict} (${n} finding${n === 1 ? "" : "s"})`);
      for (const f of r.findings ?? []) {
        this.log(`  ${f.rule} ${f.severity}: ${f.message}`);
      }
    }
    const text = bad ? `convlint: ${what}: ${bad} of ${reports.length} with findings` : `convlint: ${what}: no findings`;
    const actions = bad ? (pair ? ["Repair", "Show output"] : ["Show output"]) : [];
    const show = bad ? vscode.window.showWarningMessage : vscode.window.showInformationMessage;
    void Promise.resolve(show(text, ...actions)).then((a) => {
      if (a === "Show output") {
        this.output.show(true);
      } else if (a === "Repair" && pair) {
        void this.repair(pair);
      }
    });
    return res;
  }

  dispose(): void {
    void this.stop();
    for (const d of this.disposables.splice(0)) {
      d.dispose();
    }
    this.status.dispose();
    this.output.dispose();
  }
}

function base(p: string): string {
  return p.split(/[\\/]/).pop() ?? p;
}

/** Run a program, streaming its output; resolves with its exit code (127: it could not start). */
export function runProcess(command: string, args: string[], log: (s: string) => void): Promise<number> {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { spawn } = require("child_process") as typeof import("child_process");
  return new Promise((resolve) => {
    const p = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    p.stdout.on("data", (d) => log(String(d)));
    p.stderr.on("data", (d) => log(String(d)));
    p.on("error", (e) => { log(`${e.message}\n`); resolve(127); });
    p.on("close", (code) => resolve(code ?? 1));
  });
}
