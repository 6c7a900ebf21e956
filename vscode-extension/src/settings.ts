// The extension's `convlint.*` settings, and what the server is told of them.
//
// Pure functions (no `vscode` import), so the unit tests check them directly. The keys sent as
// initializationOptions are the server's (docs/server.md, "Settings"); the server ignores
// unknown keys and ill-typed values with a log line, never fatally.

import * as os from "os";

export type Run = "onType" | "onSave";
export type Severity = "error" | "warning" | "info";

export interface ConvlintSettings {
  enable: boolean;
  run: Run;
  severity: Record<string, Severity>;
  atol: number;
  rtol: number;
  heavyChecks: boolean;
  trustedExecution: boolean;
  traceOnSave: boolean;
  tvm: boolean;
  timeout: number;
  debounce: number;
  interpreter: string;
  serverArgs: string[];
}

export const DEFAULTS: ConvlintSettings = {
  enable: true,
  run: "onType",
  severity: {},
  atol: 1e-4,
  rtol: 1e-4,
  heavyChecks: true,
  trustedExecution: true,
  traceOnSave: false,
  tvm: true,
  timeout: 900,
  debounce: 0,
  interpreter: "",
  serverArgs: [],
};

/** Settings that decide what runs: changing them restarts the server. */
export const RESTART_KEYS = ["interpreter", "serverArgs"] as const;

/** What `${...}` variables expand to. */
export interface VarContext {
  workspaceFolder?: string;
  userHome?: string;
  env?: Record<string, string | undefined>;
}

/** Expand `${workspaceFolder}`, `${workspaceFolderBasename}`, `${userHome}`, `${env:NAME}` and a
 * leading `~`, as VS Code's own settings do. An unknown variable is left as it is. */
export function expandVariables(value: string, ctx: VarContext): string {
  const home = ctx.userHome ?? os.homedir();
  const env = ctx.env ?? process.env;
  let out = value.replace(/\$\{([^}]+)\}/g, (whole, name: string) => {
    if (name === "workspaceFolder" || name === "workspaceRoot") {
      return ctx.workspaceFolder ?? whole;
    }
    if (name === "workspaceFolderBasename") {
      return ctx.workspaceFolder ? ctx.workspaceFolder.replace(/[\\/]+$/, "").split(/[\\/]/).pop() ?? whole : whole;
    }
    if (name === "userHome") {
      return home;
    }
    if (name.startsWith("env:")) {
      return env[name.slice(4)] ?? "";
    }
    return whole;
  });
  if (out === "~" || out.startsWith("~/") || out.startsWith("~\\")) {
    out = home + out.slice(1);
  }
  return out;
}

/** Anything with VS Code's `WorkspaceConfiguration.get`. */
export interface ConfigLike {
  get<T>(key: string): T | undefined;
}

function pick<K extends keyof ConvlintSettings>(
  cfg: ConfigLike, key: K, ok: (v: unknown) => boolean, problems: string[],
): ConvlintSettings[K] {
  const v = cfg.get<unknown>(key);
  if (v === undefined || v === null) {
    return DEFAULTS[key];
  }
  if (!ok(v)) {
    problems.push(`convlint.${key}: ${JSON.stringify(v)} is not valid; using ${JSON.stringify(DEFAULTS[key])}`);
    return DEFAULTS[key];
  }
  return v as ConvlintSettings[K];
}

const isBool = (v: unknown) => typeof v === "boolean";
const isPos = (v: unknown) => typeof v === "number" && Number.isFinite(v) && v > 0;
/** A tolerance: at least 0 (0 asks for exact equality), as the CLI, the config and the server take it. */
const isTol = (v: unknown) => typeof v === "number" && Number.isFinite(v) && v >= 0;

/** Read the settings (section `convlint`), expanding variables; bad values fall back to the
 * default and are reported in `problems` (for the output channel). */
export function readSettings(cfg: ConfigLike, ctx: VarContext, problems: string[] = []): ConvlintSettings {
  const severity = pick(cfg, "severity", (v) => typeof v === "object" && !Array.isArray(v), problems);
  const sev: Record<string, Severity> = {};
  for (const [rule, s] of Object.entries(severity)) {
    if (s === "error" || s === "warning" || s === "info") {
      sev[rule.toUpperCase()] = s;
    } else {
      problems.push(`convlint.severity.${rule}: ${JSON.stringify(s)} must be error, warning or info (ignored)`);
    }
  }
  const args = pick(cfg, "serverArgs", (v) => Array.isArray(v) && v.every((a) => typeof a === "string"), problems);
  return {
    enable: pick(cfg, "enable", isBool, problems),
    run: pick(cfg, "run", (v) => v === "onType" || v === "onSave", problems),
    severity: sev,
    atol: pick(cfg, "atol", isTol, problems),
    rtol: pick(cfg, "rtol", isTol, problems),
    heavyChecks: pick(cfg, "heavyChecks", isBool, problems),
    trustedExecution: pick(cfg, "trustedExecution", isBool, problems),
    traceOnSave: pick(cfg, "traceOnSave", isBool, problems),
    tvm: pick(cfg, "tvm", isBool, problems),
    timeout: pick(cfg, "timeout", isPos, problems),
    debounce: pick(cfg, "debounce", (v) => Number.isInteger(v) && (v as number) >= 0, problems),
    interpreter: expandVariables(pick(cfg, "interpreter", (v) => typeof v === "string", problems).trim(), ctx),
    serverArgs: args.map((a) => expandVariables(a, ctx)),
  };
}

/** The server's initializationOptions (and `workspace/didChangeConfiguration` settings).
 *
 * `trusted` is VS Code's Workspace Trust. Heavy checks load models and run scripts, so the
 * server is told `trustedExecution: true` only when the workspace is trusted **and** the user
 * has not turned it off. `watchFiles: false`: the extension forwards its own file watchers. */
export function initializationOptions(s: ConvlintSettings, trusted: boolean, interpreter?: string): Record<string, unknown> {
  const opts: Record<string, unknown> = {
    enable: s.enable,
    run: s.run,
    severity: s.severity,
    atol: s.atol,
    rtol: s.rtol,
    heavyChecks: s.heavyChecks,
    trustedExecution: trusted && s.trustedExecution,
    traceOnSave: trusted && s.traceOnSave,
    tvm: s.tvm,
    timeout: s.timeout,
    debounce: s.debounce,
    watchFiles: false,
  };
  if (trusted && interpreter) {
    opts.interpreter = interpreter;
  }
  return opts;
}

/** The settings whose change needs a new server process (the others are sent to it). */
export function needsRestart(before: ConvlintSettings, after: ConvlintSettings): boolean {
  return before.interpreter !== after.interpreter || before.serverArgs.join("\u0000") !== after.serverArgs.join("\u0000");
}
