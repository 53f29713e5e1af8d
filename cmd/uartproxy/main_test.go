package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// bin is the uartproxy binary that TestMain builds; the end-to-end tests
// run it as a subprocess, the way a user or systemd does.
var bin string

// TestMain builds the binary once, without -race even when the tests run
// with it: the tests check behaviour seen from outside, and a race-built
// emulator would eat the two cores the pty line needs.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "uartproxy-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "uartproxy")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: go build:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
