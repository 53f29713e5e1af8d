// Package firmware holds the ESP32 firmware (MicroPython) that
// `uartproxy flash` puts on a board, embedded in the binary so the single
// binary is enough. The Python sources beside this file are the firmware;
// the tests under tests/ run them under the real MicroPython VM and under
// CPython with shims.
//
// Concurrency: FS is read-only and safe for concurrent use.
package firmware

import (
	"embed"
	"io/fs"
	"sort"
)

// files are the firmware files that go onto the board, at these paths
// relative to the board's filesystem root.
//
//go:embed main.py uproxy/*.py
var files embed.FS

// FS returns the firmware files, rooted at the board's filesystem root.
func FS() fs.FS { return files }

// Paths lists the firmware files, sorted by path.
func Paths() []string {
	var out []string
	fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out
}
