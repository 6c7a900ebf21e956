// End to end: start the real Python server exactly as the extension does (the same interpreter
// resolution, command, arguments, working folder, environment and initializationOptions) and
// drive it over stdio with vscode-jsonrpc, as vscode-languageclient would.
//
// The interpreter is $CONVLINT_PYTHON, else the repository's .venv (make test builds it).

import { strict as assert } from "assert";
import { spawn, ChildProcess } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "url";
import { createMessageConnection, MessageConnection, StreamMessageReader, StreamMessageWriter } from "vscode-jsonrpc/node";

import { probe, resolveInterpreter, serverCommand } from "../../src/python";
import { initializationOptions, readSettings } from "../../src/settings";

const EXT_DIR = path.resolve(__dirname, "..", "..", "..");  // out/test/<kind>/
const REPO = path.resolve(EXT_DIR, "..");
const FIXTURE = path.join(REPO, "fixtures", "scripts", "tflite_optimize.py");
const CLEAN = path.join(REPO, "fixtures", "scripts", "tflite_optimize.clean.py");

function python(): string {
  if (process.env.CONVLINT_PYTHON) {
    return process.env.CONVLINT_PYTHON;
  }
  const venv = path.join(REPO, ".venv", process.platform === "win32" ? "Scripts/python.exe" : "bin/python");
  if (!fs.existsSync(venv)) {
    throw new Error(`no Python with convlint: set CONVLINT_PYTHON or run 'make install' to build ${venv}`);
  }
  return venv;
}

type Diagnostic = { range: any; code: string; severity: number; message: string; data?: any };

describe("the real server, started as the extension starts it", () => {
  let proc: ChildProcess;
  let conn: MessageConnection;
  let ws: string;
  const published = new Map<string, Diagnostic[][]>();
  const stderr: string[] = [];

  before(async () => {
    ws = fs.mkdtempSync(path.join(os.tmpdir(), "convlint-e2e-"));
    fs.copyFileSync(FIXTURE, path.join(ws, "convert.py"));
    fs.copyFileSync(CLEAN, path.join(ws, "convert_clean.py"));
    // the extension's own steps: settings (as VS Code would return them), interpreter, probe
    const settings = readSettings({ get: <T>(k: string) => ({ interpreter: python(), severity: { CL411: "error" } } as Record<string, unknown>)[k] as T | undefined },
      { workspaceFolder: ws });
    const interp = await resolveInterpreter(settings.interpreter, false, [ws], async () => undefined);
    const found = await probe(interp.path, EXT_DIR);
    assert.ok(found.convlint, `convlint must be importable by ${interp.path}: ${found.error}`);
    const cmd = serverCommand(interp.path, settings.serverArgs, EXT_DIR);
    assert.deepEqual(cmd.args, ["-m", "convlint.server"]);
    proc = spawn(cmd.command, cmd.args, { cwd: cmd.options.cwd,
      env: { ...cmd.options.env, CONVLINT_CACHE_DIR: path.join(ws, ".cache") }, stdio: ["pipe", "pipe", "pipe"] });
    proc.stderr!.on("data", (d) => stderr.push(String(d)));
    conn = createMessageConnection(new StreamMessageReader(proc.stdout!), new StreamMessageWriter(proc.stdin!));
    conn.onNotification("textDocument/publishDiagnostics", (p: { uri: string; diagnostics: Diagnostic[] }) => {
      const l = published.get(p.uri) ?? [];
      l.push(p.diagnostics);
      published.set(p.uri, l);
    });
    conn.onRequest("window/workDoneProgress/create", () => null);
    conn.onRequest("client/registerCapability", () => null);
    conn.onNotification("window/logMessage", () => undefined);
    conn.listen();
    const init: any = await conn.sendRequest("initialize", {
      processId: process.pid,
      rootUri: pathToFileURL(ws).toString(),
      workspaceFolders: [{ uri: pathToFileURL(ws).toString(), name: "ws" }],
      capabilities: {
        general: { positionEncodings: ["utf-16"] },
        window: { workDoneProgress: true },
        workspace: { workspaceEdit: { documentChanges: true }, didChangeWatchedFiles: { dynamicRegistration: true } },
        textDocument: {
          synchronization: { didSave: true },
          publishDiagnostics: { relatedInformation: true, versionSupport: true, codeDescriptionSupport: true, dataSupport: true },
          codeAction: { codeActionLiteralSupport: { codeActionKind: { valueSet: ["quickfix", "source"] } }, dataSupport: true },
        },
      },
      initializationOptions: initializationOptions(settings, false, interp.path),
    });
    assert.equal(init.serverInfo.name, "convlint");
    conn.sendNotification("initialized", {});
  });

  after(async () => {
    const exited = new Promise((r) => proc.once("exit", r));
    try {
      await Promise.race([conn.sendRequest("shutdown"), new Promise((r) => setTimeout(r, 10000))]);
      await conn.sendNotification("exit");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10000))]);
    } finally {
      conn.end();
      conn.dispose();
      if (proc.exitCode === null) {
        proc.kill();
      }
      fs.rmSync(ws, { recursive: true, force: true });
    }
    assert.equal(proc.exitCode, 0, "the server exits cleanly after shutdown and exit");
  });

  async function waitFor(uri: string, pred: (ds: Diagnostic[]) => boolean, what: string): Promise<Diagnostic[]> {
    const t0 = Date.now();
    while (Date.now() - t0 < 60000) {
      const l = published.get(uri);
      if (l && l.length && pred(l[l.length - 1])) {
        return l[l.length - 1];
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`timed out waiting for ${what}; server stderr:\n${stderr.join("").slice(-2000)}`);
  }

  function open(file: string): { uri: string; text: string } {
    const uri = pathToFileURL(file).toString();
    const text = fs.readFileSync(file, "utf8");
    conn.sendNotification("textDocument/didOpen", { textDocument: { uri, languageId: "python", version: 1, text } });
    return { uri, text };
  }

  it("publishes the script's diagnostics, and its quick fix clears them", async () => {
    const { uri, text } = open(path.join(ws, "convert.py"));
    const ds = await waitFor(uri, (d) => d.some((x) => x.code === "CL411"), "CL411");
    const d = ds.find((x) => x.code === "CL411")!;
    assert.equal(d.severity, 1, "the editor's severity override (error) is applied");
    const line = text.split("\n").findIndex((l) => l.includes("tf.lite.Optimize.DEFAULT"));
    assert.equal(d.range.start.line, line);
    assert.equal(d.data.origin, "static");
    const actions: any[] = await conn.sendRequest("textDocument/codeAction", {
      textDocument: { uri }, range: d.range, context: { diagnostics: [d], only: ["quickfix"] } });
    const fix = actions.find((a) => a.kind === "quickfix");
    assert.ok(fix, JSON.stringify(actions));
    const change = fix.edit.documentChanges[0];
    assert.equal(change.textDocument.uri, uri);
    assert.equal(change.textDocument.version, 1);
    const fixed = applyEdits(text, change.edits);
    assert.notEqual(fixed, text);
    conn.sendNotification("textDocument/didChange", { textDocument: { uri, version: 2 }, contentChanges: [{ text: fixed }] });
    await waitFor(uri, (d) => !d.some((x) => x.code === "CL411"), "CL411 to clear after the fix");
  });

  it("the clean twin gets no diagnostic", async () => {
    const { uri } = open(path.join(ws, "convert_clean.py"));
    const ds = await waitFor(uri, () => true, "the clean twin's diagnostics");
    assert.deepEqual(ds, []);
  });

  it("an untrusted start refuses heavy commands with an error, and keeps answering", async () => {
    const uri = pathToFileURL(path.join(ws, "convert.py")).toString();
    await assert.rejects(conn.sendRequest("workspace/executeCommand", { command: "convlint.runCheck", arguments: [uri] }),
      /trust/i);
    const st: any = await conn.sendRequest("workspace/executeCommand", { command: "convlint.status", arguments: [] });
    assert.equal(st.settings.trusted, false);
    assert.equal(st.settings.watch_files, false, "the extension forwards its own file watchers");
  });
});

/** Apply LSP TextEdits (UTF-16 positions, non-overlapping) to a text. */
function applyEdits(text: string, edits: { range: { start: { line: number; character: number }; end: { line: number; character: number } }; newText: string }[]): string {
  const lines = text.split("\n");
  const offset = (p: { line: number; character: number }) =>
    lines.slice(0, p.line).reduce((n, l) => n + l.length + 1, 0) + p.character;
  const sorted = [...edits].sort((a, b) => offset(b.range.start) - offset(a.range.start));
  let out = text;
  for (const e of sorted) {
    out = out.slice(0, offset(e.range.start)) + e.newText + out.slice(offset(e.range.end));
  }
  return out;
}
