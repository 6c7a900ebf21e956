// A mocked `vscode` module for the unit tests: the parts of the API the extension uses, with
// the state the tests set (settings, trust, dialog answers) and record (messages, commands).
// test/register.cjs makes `require("vscode")` load this file.

type Listener<T> = (e: T) => unknown;

export class Disposable {
  constructor(private readonly fn: () => void = () => {}) {}
  dispose(): void {
    this.fn();
  }
  static from(...ds: { dispose(): unknown }[]): Disposable {
    return new Disposable(() => ds.forEach((d) => d.dispose()));
  }
}

export class EventEmitter<T> {
  private listeners: Listener<T>[] = [];
  event = (l: Listener<T>): Disposable => {
    this.listeners.push(l);
    return new Disposable(() => { this.listeners = this.listeners.filter((x) => x !== l); });
  };
  fire(e: T): void {
    this.listeners.slice().forEach((l) => l(e));
  }
  dispose(): void {
    this.listeners = [];
  }
}

export class Uri {
  private constructor(readonly scheme: string, readonly path: string) {}
  get fsPath(): string {
    return this.path;
  }
  static file(p: string): Uri {
    return new Uri("file", p);
  }
  static parse(s: string): Uri {
    const m = /^([a-z]+):\/\/(.*)$/.exec(s);
    return m ? new Uri(m[1], m[2]) : new Uri("file", s);
  }
  toString(): string {
    return `${this.scheme}://${this.path}`;
  }
}

export enum LanguageStatusSeverity { Information = 0, Warning = 1, Error = 2 }
export enum ProgressLocation { SourceControl = 1, Window = 10, Notification = 15 }

export interface Message { level: "error" | "warning" | "info"; text: string; items: string[] }

/** What the tests set and read. */
export const state = {
  config: {} as Record<string, unknown>,
  /** A workspace folder's own settings (by folder path), over `config`. */
  folderConfig: {} as Record<string, Record<string, unknown>>,
  trusted: true,
  folders: [] as string[],
  messages: [] as Message[],
  /** Answers to messages: first answer whose key is a substring of the message text. */
  answers: {} as Record<string, string | undefined>,
  openDialog: [] as (string[] | undefined)[],
  activeFile: undefined as string | undefined,
  commands: new Map<string, (...a: unknown[]) => unknown>(),
  executed: [] as { command: string; args: unknown[] }[],
  progress: [] as { title?: string; cancellable?: boolean }[],
  /** Cancel the next progress's token as soon as the task starts. */
  cancelNextProgress: false,
  watchers: [] as string[],
  /** What workspace.findFiles finds (paths). */
  files: [] as string[],
  statusItems: [] as any[],
  outputs: [] as { name: string; lines: string[]; shown: number }[],
  configListeners: new EventEmitter<{ affectsConfiguration(s: string): boolean }>(),
  trustListeners: new EventEmitter<void>(),
  reset(): void {
    this.config = {};
    this.folderConfig = {};
    this.trusted = true;
    this.folders = [];
    this.messages = [];
    this.answers = {};
    this.openDialog = [];
    this.activeFile = undefined;
    this.commands.clear();
    this.executed = [];
    this.progress = [];
    this.cancelNextProgress = false;
    this.watchers = [];
    this.files = [];
    this.statusItems = [];
    this.outputs = [];
    this.configListeners = new EventEmitter();
    this.trustListeners = new EventEmitter();
  },
  /** Change settings as the user would: the config-change event fires. */
  setConfig(changes: Record<string, unknown>): void {
    Object.assign(this.config, changes);
    this.configListeners.fire({ affectsConfiguration: (s: string) => s === "convlint" || s.startsWith("convlint.") });
  },
  grantTrust(): void {
    this.trusted = true;
    this.trustListeners.fire();
  },
};

function answer(level: Message["level"], text: string, raw: unknown[]): Promise<string | undefined> {
  const items = raw.filter((i): i is string => typeof i === "string");  // drops { modal: true }
  state.messages.push({ level, text, items });
  for (const [k, v] of Object.entries(state.answers)) {
    if (text.includes(k)) {
      return Promise.resolve(v);
    }
  }
  return Promise.resolve(undefined);
}

export const window = {
  createOutputChannel(name: string) {
    const o = { name, lines: [] as string[], shown: 0 };
    state.outputs.push(o);
    return {
      name,
      appendLine: (s: string) => { o.lines.push(s); },
      append: (s: string) => { o.lines.push(s); },
      show: () => { o.shown += 1; },
      clear: () => { o.lines.length = 0; },
      dispose: () => {},
    };
  },
  showErrorMessage: (text: string, ...items: unknown[]) => answer("error", text, items),
  showWarningMessage: (text: string, ...items: unknown[]) => answer("warning", text, items),
  showInformationMessage: (text: string, ...items: unknown[]) => answer("info", text, items),
  async showOpenDialog(_opts: unknown) {
    const a = state.openDialog.shift();
    return a?.map((p) => Uri.file(p));
  },
  async withProgress<R>(opts: { title?: string; cancellable?: boolean }, task: (p: unknown, t: unknown) => Promise<R>) {
    state.progress.push(opts);
    const ev = new EventEmitter<void>();
    const token = { isCancellationRequested: false, onCancellationRequested: ev.event };
    if (state.cancelNextProgress) {
      state.cancelNextProgress = false;
      token.isCancellationRequested = true;
      ev.fire();
    }
    return task({ report: () => {} }, token);
  },
  get activeTextEditor() {
    return state.activeFile ? { document: { uri: Uri.file(state.activeFile) } } : undefined;
  },
};

export const workspace = {
  async findFiles(_include: string, _exclude?: string, _max?: number) {
    return state.files.map((f) => Uri.file(f));
  },
  getConfiguration(_section?: string, scope?: { fsPath?: string }) {
    const own = (scope?.fsPath && state.folderConfig[scope.fsPath]) || {};
    return {
      get<T>(key: string): T | undefined {
        return (key in own ? own[key] : state.config[key]) as T | undefined;
      },
    };
  },
  get isTrusted() {
    return state.trusted;
  },
  get workspaceFolders() {
    return state.folders.map((f, index) => ({ uri: Uri.file(f), name: f.split("/").pop(), index }));
  },
  onDidChangeConfiguration: (l: Listener<{ affectsConfiguration(s: string): boolean }>) => state.configListeners.event(l),
  onDidGrantWorkspaceTrust: (l: Listener<void>) => state.trustListeners.event(l),
  createFileSystemWatcher(glob: string) {
    state.watchers.push(glob);
    return { glob, dispose: () => { state.watchers = state.watchers.filter((g) => g !== glob); } };
  },
};

export const languages = {
  createLanguageStatusItem(id: string, selector: unknown) {
    const item = { id, selector, text: "", detail: "", severity: 0, busy: false, disposed: false,
      dispose() { item.disposed = true; } } as any;
    state.statusItems.push(item);
    return item;
  },
};

export const commands = {
  registerCommand(id: string, fn: (...a: unknown[]) => unknown) {
    if (state.commands.has(id)) {
      throw new Error(`command '${id}' already exists`);
    }
    state.commands.set(id, fn);
    return new Disposable(() => state.commands.delete(id));
  },
  async executeCommand(id: string, ...args: unknown[]) {
    const fn = state.commands.get(id);
    if (fn) {
      return fn(...args);
    }
    state.executed.push({ command: id, args });
    return undefined;
  },
};

export const extensions = {
  getExtension(_id: string) {
    return undefined;
  },
};
