// End to end: the packaged .vsix installs what it ships. Its contents are unpacked as VS Code
// would, a bare virtual environment is made, and then, with the extension's own functions:
// the language server runs from the bundled libs on that bare interpreter (no numpy, no
// convlint), and "Install convlint" installs convlint from the .vsix alone (no package index),
// after which `convlint diff` of an ONNX pair works there and no framework was installed.
//
// The .vsix is $CONVLINT_VSIX (make test-extension builds it first), else ./convlint.vsix; the
// base interpreter is $CONVLINT_PYTHON, else the repository's .venv.

import { strict as assert } from "assert";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { after, describe, it } from "node:test";

import { installCommands, readBundle, serverCommand } from "../../src/python";

const EXT_DIR = path.resolve(__dirname, "..", "..", "..");  // out/test/<kind>/
const REPO = path.resolve(EXT_DIR, "..");
const VSIX = process.env.CONVLINT_VSIX ? path.resolve(EXT_DIR, process.env.CONVLINT_VSIX) : path.join(EXT_DIR, "convlint.vsix");

function basePython(): string {
  return process.env.CONVLINT_PYTHON ?? path.join(REPO, ".venv", "bin", "python");
}

describe("the .vsix installs convlint from its own contents", { skip: !fs.existsSync(VSIX) && !process.env.CONVLINT_VSIX
  ? `no ${VSIX} (make test-extension builds it)` : false }, () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "convlint-vsix-"));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("serves the static checks from bundled/libs, then installs offline into a bare venv", () => {
    assert.ok(fs.existsSync(VSIX), `${VSIX} is missing`);
    const unpacked = path.join(tmp, "vsix");
    execFileSync(basePython(), ["-m", "zipfile", "-e", VSIX, unpacked]);
    const ext = path.join(unpacked, "extension");
    const bundle = readBundle(ext);
    assert.ok(bundle, "bundled/manifest.json and the wheel it names");
    const venv = path.join(tmp, "venv");
    execFileSync(basePython(), ["-m", "venv", venv]);
    const py = path.join(venv, "bin", "python");
    const env: NodeJS.ProcessEnv = { ...process.env, CONVLINT_CACHE_DIR: path.join(tmp, "cache") };
    delete env.PYTHONPATH;
    const bare = spawnSync(py, ["-c", "import importlib.util as u; print(u.find_spec('numpy'), u.find_spec('convlint'))"],
      { env, encoding: "utf8" });
    assert.equal(bare.stdout.trim(), "None None", "the venv is bare");

    // 1. the server from the bundle, on the bare interpreter: a real LSP session (the tests'
    //    standard-library client: initialize, didOpen of a conversion script, its diagnostics, shutdown)
    const server = serverCommand(py, [], ext, bundle.libs);
    const session = "import os, sys, tempfile; sys.path.insert(0, sys.argv[1]); " +
      "from jsonrpc_client import one_session; " +
      "print(' '.join(one_session(sys.executable, tempfile.mkdtemp(), env=dict(os.environ))))";
    const served = spawnSync(py, ["-c", session, path.join(process.cwd(), "..", "tests")], { cwd: ext,
      env: { ...server.options.env, ...env, PYTHONPATH: server.options.env.PYTHONPATH },
      encoding: "utf8", timeout: 120000 });
    assert.equal(served.status, 0, served.stderr);
    assert.match(served.stdout, /CL411/);

    // 2. "Install convlint": the extension's first command installs from the .vsix alone
    const [offline] = installCommands(py, bundle);
    assert.ok(offline.args.includes("--no-index"));
    const inst = spawnSync(offline.command, offline.args, { env, encoding: "utf8", timeout: 600000 });
    assert.equal(inst.status, 0, inst.stderr);
    const list = spawnSync(py, ["-m", "pip", "list", "--format", "freeze"], { env, encoding: "utf8" }).stdout.toLowerCase();
    assert.match(list, /^convlint==/m);
    for (const heavy of ["torch", "tensorflow", "tensorflow-cpu", "apache-tvm"]) {
      assert.doesNotMatch(list, new RegExp(`^${heavy}==`, "m"), `${heavy} must not be installed by the light core`);
    }

    // 3. an ONNX-to-ONNX check works there, from the installed package (no PYTHONPATH)
    const models = path.join(REPO, "fixtures", "models");
    const diff = spawnSync(py, ["-m", "convlint", "diff", path.join(models, "resnet.torch.onnx"),
      path.join(models, "resnet.torch.tampered.onnx"), "--format", "json", "--num-inputs", "4"],
    { cwd: tmp, env, encoding: "utf8", timeout: 300000 });
    assert.equal(diff.status, 1, diff.stderr);
    const rep = JSON.parse(diff.stdout);
    assert.equal(rep.verdict, "divergent");
    assert.ok(rep.findings.some((f: { rule: string }) => f.rule === "CL204"));
    // and a Keras model names the extra it needs (exit 2, never an ImportError)
    const keras = spawnSync(py, ["-m", "convlint", "diff", path.join(models, "mobilenet.keras"),
      path.join(models, "mobilenet.tf2onnx.onnx")], { cwd: tmp, env, encoding: "utf8", timeout: 120000 });
    assert.equal(keras.status, 2);
    assert.match(keras.stderr, /pip install 'convlint\[tensorflow\]'/);
  });
});
