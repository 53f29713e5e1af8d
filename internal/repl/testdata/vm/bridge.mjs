// bridge.mjs presents the real MicroPython VM (the WebAssembly build from
// npm, pinned in package.json) as a board on a serial line, for the tests
// of internal/repl and `uartproxy flash`: every byte on stdin goes to the
// VM's REPL (replProcessChar), everything the VM prints goes to stdout.
// The Go tests put a pseudo-terminal in front of it (repltest.StartVM).
//
// Like a board, a soft reset (Ctrl-D on an empty line) prints "MPY: soft
// reboot" and restarts the REPL in the mode it was in (replInit keeps the
// raw REPL); the in-memory filesystem survives, as a board's flash does.
// Unlike a board, the VM runs neither boot.py nor main.py after it.
//
// Raw-paste mode: this build answers the request (Ctrl-E "A" Ctrl-A) with
// "R\x01" and a window, then ends the transfer and loops for ever inside
// replProcessChar without reading input, so nothing can bring it back. By
// default the bridge therefore answers the request the way a MicroPython
// from before raw-paste mode does: it drops the Ctrl-E and "A" and gives
// the VM the Ctrl-A, which prints the raw REPL banner again. With
// --raw-paste it passes the request through and writes every byte the VM
// prints at once, so a test can watch a client meet the broken mode.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import { writeSync } from "node:fs";

const passRawPaste = process.argv.includes("--raw-paste");

let out = [];
const flush = () => {
  if (out.length > 0) {
    writeSync(1, Buffer.from(out));
    out = [];
  }
};
const collect = (bytes) => {
  for (const b of bytes) out.push(b);
  if (passRawPaste) flush();
};

const mp = await loadMicroPython({ stdout: collect, stderr: collect, linebuffer: false });

const feed = (c) => {
  if (mp.replProcessChar(c) !== 0) {
    collect(Buffer.from("MPY: soft reboot\r\n"));
    mp.replInit();
  }
};

// held is the start of a raw-paste request seen so far: [], [5] or [5, 65].
let held = [];
const take = (c) => {
  if (passRawPaste) return feed(c);
  if (held.length === 0 && c === 0x05) return held.push(c);
  if (held.length === 1 && c === 0x41) return held.push(c);
  if (held.length === 2 && c === 0x01) {
    held = [];
    return feed(c);
  }
  const h = held;
  held = [];
  for (const x of h) feed(x);
  if (c === 0x05) return take(c);
  feed(c);
};

mp.replInit();
flush();
process.stdin.on("data", (data) => {
  for (const c of data) take(c);
  flush();
});
process.stdin.on("end", () => {
  flush();
  process.exit(0);
});
