// Which Python runs the convlint server, whether convlint is installed there, and the exact
// command that starts the server. No `vscode` import: the end-to-end test starts the server
// with these same functions.

import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";

export type InterpreterSource = "convlint.interpreter" | "python extension" | "PATH";

export interface Interpreter {
  path: string;
  source: InterpreterSource;
}

/** The small part of the Python extension's API (`@vscode/python-extension`) used here. */
export interface PythonApiLike {
  environments: {
    getActiveEnvironmentPath(resource?: unknown): { path: string };
    resolveEnvironment(env: { path: string } | string): Promise<{ executable: { uri?: { fsPath: string } } } | undefined>;
  };
}

export function defaultPython(platform: string = process.platform): string {
  return platform === "win32" ? "python" : "python3";
}

/** True when `file` lies inside one of the folders. */
export function isInside(file: string, folders: readonly string[]): boolean {
  const f = path.resolve(file);
  return folders.some((d) => {
    const rel = path.relative(path.resolve(d), f);
    return rel !== "" && !rel.startsWith("..") && !path.isAbsolute(rel);
  });
}

/** The interpreter: the `convlint.interpreter` setting, else the Python extension's active
 * environment, else `python3` on PATH.
 *
 * In an untrusted workspace an interpreter inside a workspace folder (a checked-in `.venv`) is
 * never used, since starting it would run the workspace's code; VS Code already ignores the
 * workspace's own value of `convlint.interpreter` there (a restricted setting). */
export async function resolveInterpreter(
  setting: string, trusted: boolean, workspaceFolders: readonly string[],
  pythonApi: () => Promise<PythonApiLike | undefined>, log: (m: string) => void = () => {},
): Promise<Interpreter> {
  if (setting) {
    if (!trusted && isInside(setting, workspaceFolders)) {
      log(`convlint.interpreter ${setting} is inside the untrusted workspace; not using it`);
    } else {
      return { path: setting, source: "convlint.interpreter" };
    }
  }
  try {
    const api = await pythonApi();
    if (api) {
      const active = api.environments.getActiveEnvironmentPath();
      const env = await api.environments.resolveEnvironment(active);
      const exe = env?.executable.uri?.fsPath;
      if (exe) {
        if (!trusted && isInside(exe, workspaceFolders)) {
          log(`the selected interpreter ${exe} is inside the untrusted workspace; using ${defaultPython()} on PATH`);
        } else {
          return { path: exe, source: "python extension" };
        }
      }
    }
  } catch (e) {
    log(`the Python extension gave no interpreter (${e instanceof Error ? e.message : String(e)})`);
  }
  return { path: defaultPython(), source: "PATH" };
}

export interface ProbeResult {
  /** convlint's version, or null when it cannot be imported there. */
  convlint: string | null;
  python: string | null;
  error?: string;
  /** Which frameworks the interpreter can import (tensorflow, torch, tvm). */
  frameworks?: Record<string, boolean>;
}

const PROBE = [
  "import importlib.util, json, sys",
  "out = {'python': sys.version.split()[0], 'convlint': None}",
  "out['frameworks'] = {m: importlib.util.find_spec(m) is not None for m in ('tensorflow', 'torch', 'tvm')}",
  "try:",
  "    import convlint",
  "    out['convlint'] = convlint.__version__",
  "except Exception as e:",
  "    out['error'] = f'{type(e).__name__}: {e}'",
  "print(json.dumps(out))",
].join("\n");

/** Ask the interpreter for its version and convlint's. `cwd` must not be a folder that could
 * shadow `convlint` (the extension's own folder is used). Never throws. */
export function probe(python: string, cwd: string, timeoutMs = 30000): Promise<ProbeResult> {
  return new Promise((resolve) => {
    execFile(python, ["-c", PROBE], { cwd, timeout: timeoutMs, env: serverEnv() }, (err, stdout, stderr) => {
      const line = stdout.trim().split("\n").pop() ?? "";
      try {
        const r = JSON.parse(line) as ProbeResult;
        resolve(r);
      } catch {
        const why = err ? (err as NodeJS.ErrnoException).code === "ENOENT" ? `${python} was not found` : err.message : stderr.trim();
        resolve({ convlint: null, python: null, error: why || "no answer" });
      }
    });
  });
}

/** The environment of the server: the user's, with the current folder kept off sys.path
 * (PYTHONSAFEPATH, Python 3.11+) and unbuffered output. */
export function serverEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...base, PYTHONSAFEPATH: "1", PYTHONUNBUFFERED: "1" };
}

export interface ServerCommand {
  command: string;
  args: string[];
  options: { cwd: string; env: NodeJS.ProcessEnv };
}

/** Exactly how the extension starts the server (stdio). With `bundledLibs`, convlint and the
 * server's pure-Python dependencies come from the extension's own copy (an interpreter without
 * convlint still gets the static checks). */
export function serverCommand(python: string, extraArgs: readonly string[], cwd: string,
  bundledLibs?: string): ServerCommand {
  const env = serverEnv();
  if (bundledLibs) {
    env.PYTHONPATH = [bundledLibs, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter);
  }
  return { command: python, args: ["-m", "convlint.server", ...extraArgs], options: { cwd, env } };
}

/** What the .vsix carries under bundled/ (scripts/bundle_python.py writes it). */
export interface Bundle {
  /** convlint's wheel, and the folder of it and its light dependencies' wheels. */
  wheel: string;
  wheels: string;
  /** convlint and the server's pure-Python dependencies, unpacked: a PYTHONPATH entry. */
  libs: string;
  version: string;
  /** The Python and platform the dependency wheels were chosen for ("3.11", "linux-x86_64"). */
  python: string;
  platform: string;
}

/** The extension's bundle, or undefined when this build carries none. Never throws. */
export function readBundle(extensionDir: string): Bundle | undefined {
  const dir = path.join(extensionDir, "bundled");
  try {
    const m = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
    const wheel = path.join(dir, "wheels", m.wheel);
    if (!fs.existsSync(wheel)) {
      return undefined;
    }
    return { wheel, wheels: path.join(dir, "wheels"), libs: path.join(dir, "libs"), version: m.convlint,
      python: m.python, platform: m.platform };
  } catch {
    return undefined;
  }
}

/** The model files a framework is needed for, by extension. */
const NEEDS: [RegExp, string, string][] = [
  [/\.(keras|h5|hdf5|tflite)$|(^|[\/\\])saved_model\.pb$/i, "tensorflow", "tensorflow"],
  [/\.(pt2|pt|pth|ts|jit)$/i, "torch", "torch"],
  [/\.xml$/i, "openvino", "openvino"],
];

/** The extras to install so that the workspace's models can be checked: a framework its model
 * files need that the interpreter cannot import yet (one it has is kept, never replaced). */
export function neededExtras(modelFiles: readonly string[], frameworks: Record<string, boolean> = {}): string[] {
  const out: string[] = [];
  for (const [re, module, extra] of NEEDS) {
    if (!frameworks[module] && modelFiles.some((f) => re.test(f)) && !out.includes(extra)) {
      out.push(extra);
    }
  }
  return out;
}

/** The commands that install convlint from the extension's own wheel into the interpreter, with
 * the extras the workspace needs: first from the .vsix alone (`--no-index`), then, when that
 * cannot be satisfied (another Python or platform than the bundled wheels', or an extra), with
 * the interpreter's package index as well. convlint itself always comes from the bundle. */
export function installCommands(python: string, bundle: Bundle, extras: readonly string[] = []):
  { command: string; args: string[] }[] {
  const spec = bundle.wheel + (extras.length ? `[${extras.join(",")}]` : "");
  const base = ["-m", "pip", "install", "--find-links", bundle.wheels];
  const online = { command: python, args: [...base, spec] };
  return extras.length ? [online] : [{ command: python, args: [...base, "--no-index", spec] }, online];
}

/** Run once after installing: fills the server's start-up cache (as pip compiles modules at
 * install time), so that even the first server start is a warm one. See docs/server.md. */
export function prepareCommand(python: string): { command: string; args: string[] } {
  return { command: python, args: ["-m", "convlint", "serve", "--prepare"] };
}
