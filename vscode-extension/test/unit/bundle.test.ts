// The shipped bundle: it loads (against the mocked vscode), exports activate/deactivate, and
// carries its dependencies inside, needing nothing at run time but Node's built-ins and vscode.

import { strict as assert } from "assert";
import { builtinModules } from "module";
import * as fs from "fs";
import * as path from "path";
import { it } from "node:test";

const EXT_DIR = path.resolve(__dirname, "..", "..", "..");  // out/test/<kind>/
const BUNDLE = path.join(EXT_DIR, "dist", "extension.js");

it("dist/extension.js loads and exports activate and deactivate", () => {
  assert.ok(fs.existsSync(BUNDLE), "run npm run build first");
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const ext = require(BUNDLE);
  assert.equal(typeof ext.activate, "function");
  assert.equal(typeof ext.deactivate, "function");
});

it("the bundle requires only vscode and Node built-ins", () => {
  const src = fs.readFileSync(BUNDLE, "utf8");
  const required = new Set([...src.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]));
  const allowed = new Set(["vscode", ...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
  const extra = [...required].filter((r) => !allowed.has(r));
  assert.deepEqual(extra, []);
  assert.ok(required.has("vscode"));
});
