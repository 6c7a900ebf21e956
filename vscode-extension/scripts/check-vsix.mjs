// Checks a packaged .vsix: the compiled bundle, the manifest, the icon and bundled/ (convlint's
// wheel, its light dependencies' wheels, the server's pure-Python libs) are in it, and nothing
// else slips in (no node_modules, no sources, no tests, no compiled Python caches). Reads the zip's central directory itself,
// so it needs no dependency. Usage: node scripts/check-vsix.mjs convlint.vsix
import { readFileSync } from "fs";

const file = process.argv[2] ?? "convlint.vsix";
const buf = readFileSync(file);
let eocd = -1;
for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65557); i--) {
  if (buf.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
}
if (eocd < 0) { console.error(`${file}: not a zip file`); process.exit(1); }
const count = buf.readUInt16LE(eocd + 10);
let p = buf.readUInt32LE(eocd + 16);
const entries = [];
for (let n = 0; n < count; n++) {
  if (buf.readUInt32LE(p) !== 0x02014b50) { console.error(`${file}: bad central directory`); process.exit(1); }
  const size = buf.readUInt32LE(p + 24);
  const nameLen = buf.readUInt16LE(p + 28), extraLen = buf.readUInt16LE(p + 30), commentLen = buf.readUInt16LE(p + 32);
  entries.push({ name: buf.toString("utf8", p + 46, p + 46 + nameLen), size });
  p += 46 + nameLen + extraLen + commentLen;
}
const names = entries.map((e) => e.name);
const required = ["extension.vsixmanifest", "extension/package.json", "extension/dist/extension.js", "extension/readme.md",
  "extension/images/icon.png", "extension/bundled/manifest.json", "extension/bundled/libs/convlint/__init__.py",
  "extension/bundled/libs/pygls/__init__.py", "extension/bundled/libs/lsprotocol/__init__.py"];
const allowed = new Set([...required, "[Content_Types].xml", "extension/LICENSE.txt", "extension/changelog.md"]);
const problems = [];
for (const r of required) if (!names.includes(r)) problems.push(`missing ${r}`);
for (const n of names) {
  if (n.startsWith("extension/bundled/wheels/") ? !n.endsWith(".whl") : n.startsWith("extension/bundled/libs/")
    ? /__pycache__|\.(so|pyd|dylib)$/.test(n) : !allowed.has(n)) problems.push(`unexpected ${n}`);
}
if (!names.some((n) => /^extension\/bundled\/wheels\/convlint-[^/]+-py3-none-any\.whl$/.test(n))) problems.push("no convlint wheel in bundled/wheels");
if (names.some((n) => n.includes("node_modules"))) problems.push("node_modules inside the package");
const total = entries.reduce((s, e) => s + e.size, 0);
if (total > 150 * 1024 * 1024) problems.push(`${total} bytes unpacked: over 150 MB`);
const bundle = entries.find((e) => e.name === "extension/dist/extension.js");
if (bundle && bundle.size < 10000) problems.push(`the bundle is only ${bundle.size} bytes`);
if (problems.length) { console.error(`${file}:\n  ${problems.join("\n  ")}`); process.exit(1); }
console.log(`${file}: ${entries.length} files, ${total} bytes unpacked, bundle ${bundle.size} bytes: ok`);
