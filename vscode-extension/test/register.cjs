// Makes `require("vscode")` load the mocked module (out/mock/vscode.js) in the unit tests;
// VS Code itself cannot run here. Names the mock does not define are generic stand-ins
// (classes and enums), so the real bundle with vscode-languageclient inside can be loaded.
const Module = require("module");
const path = require("path");
const mockPath = path.join(__dirname, "..", "out", "mock", "vscode.js");
let proxied;

function standIn(name) {
  const C = class { constructor(...args) { this.args = args; } };
  Object.defineProperty(C, "name", { value: name });
  return new Proxy(C, { get: (t, p) => (p in t ? t[p] : typeof p === "string" ? 0 : undefined) });
}

const require0 = Module.prototype.require;
Module.prototype.require = function (request) {
  if (request !== "vscode") return require0.apply(this, arguments);
  if (!proxied) {
    const real = require0.call(this, mockPath);
    const extra = {};
    proxied = new Proxy(real, {
      get(t, p) {
        if (p in t) return t[p];
        if (typeof p !== "string" || p === "then" || p === "__esModule") return undefined;
        return (extra[p] ??= standIn(p));
      },
    });
  }
  return proxied;
};
