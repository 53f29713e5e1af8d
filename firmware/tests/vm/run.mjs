// Runs the firmware's tests (vm_tests.py) or benchmark (vm_bench.py) under
// the real MicroPython VM compiled to WebAssembly
// (@micropython/micropython-webassembly-pyscript, pinned in package.json).
//
//   node run.mjs [--bench] [--heap BYTES] FIRMWARE_DIR VECTORS_DIR
//
// The firmware's uproxy/*.py and this directory's *.py are copied into the
// VM's in-memory filesystem (/fw), the vectors into /vectors. Exit status 0
// when every test passed.
import { readFileSync, readdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
let bench = false;
let heap = 1024 * 1024;
const rest = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--bench") bench = true;
  else if (args[i] === "--heap") heap = parseInt(args[++i], 10);
  else rest.push(args[i]);
}
if (rest.length !== 2) {
  console.error("usage: node run.mjs [--bench] [--heap BYTES] FIRMWARE_DIR VECTORS_DIR");
  process.exit(2);
}
const [fwDir, vecDir] = rest;

const mp = await loadMicroPython({
  heapsize: heap,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});

function copyDir(src, dst, suffix) {
  try { mp.FS.mkdir(dst); } catch (e) { /* exists */ }
  for (const name of readdirSync(src)) {
    if (name.endsWith(suffix)) {
      mp.FS.writeFile(join(dst, name), readFileSync(join(src, name)));
    }
  }
}
copyDir(here, "/fw", ".py");
copyDir(join(fwDir, "uproxy"), "/fw/uproxy", ".py");
copyDir(vecDir, "/vectors", ".json");

let ok = false;
try {
  mp.runPython(`
import sys
sys.path.insert(0, "/fw")
${bench ? "import vm_bench\nok = vm_bench.main()" : "import vm_tests\nok = vm_tests.main('/vectors')"}
`);
  ok = mp.globals.get("ok") === true;
} catch (e) {
  console.error("Python error: " + e.message);
}
process.exit(ok ? 0 : 1);
