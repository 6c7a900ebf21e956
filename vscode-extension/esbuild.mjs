// Bundles the extension (dist/extension.js) or, with --tests, the tests (out/test/*.test.js).
// `vscode` is provided by the editor (and by test/mock/vscode.ts in the unit tests).
import { build } from "esbuild";
import { readdirSync, rmSync } from "fs";

const tests = process.argv.includes("--tests");
const common = { bundle: true, platform: "node", target: "node20", format: "cjs", external: ["vscode"], logLevel: "warning" };

if (tests) {
  rmSync("out", { recursive: true, force: true });
  const entries = [];
  for (const dir of ["test/unit", "test/e2e"]) {
    for (const f of readdirSync(dir)) {
      if (f.endsWith(".test.ts")) entries.push(`${dir}/${f}`);
    }
  }
  await build({ ...common, entryPoints: entries, outdir: "out/test", outbase: "test", sourcemap: "inline" });
  await build({ ...common, entryPoints: ["test/mock/vscode.ts"], outfile: "out/mock/vscode.js" });
} else {
  await build({ ...common, entryPoints: ["src/extension.ts"], outfile: "dist/extension.js", minify: true, sourcemap: false });
}
