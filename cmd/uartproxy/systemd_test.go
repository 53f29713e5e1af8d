package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// unitFile is the systemd unit that the repository ships.
const unitFile = "../../configs/uartproxy.service"

// verifyUnit copies unit into a temporary directory with ExecStart
// pointing at the built binary, runs `systemd-analyze verify` on it, and
// returns the lines of its output that are about the unit (the rest is
// noise from the host's own units, or from running outside systemd).
func verifyUnit(t *testing.T, unit string) []string {
	t.Helper()
	const exec0 = "ExecStart=/usr/local/bin/uartproxy "
	if !strings.Contains(unit, "\n"+exec0) {
		t.Fatalf("%s has no line starting %q", unitFile, exec0)
	}
	unit = strings.Replace(unit, "\n"+exec0, "\nExecStart="+bin+" ", 1)
	path := filepath.Join(t.TempDir(), "uartproxy.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "systemd-analyze", "verify", path)
	cmd.Env = append(os.Environ(), "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("systemd-analyze verify did not finish in a minute:\n%s", out)
	}
	var about []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "uartproxy.service") || strings.Contains(line, path) || strings.Contains(line, bin) {
			about = append(about, line)
		} else if strings.TrimSpace(line) != "" {
			t.Logf("ignored (not about the unit): %s", line)
		}
	}
	if err != nil && len(about) == 0 {
		t.Logf("systemd-analyze verify: %v, with nothing about the unit", err)
	}
	return about
}

func requireSystemdAnalyze(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed (apt-get install systemd)")
	}
}

// TestSystemdUnit checks configs/uartproxy.service with systemd-analyze
// verify: no unknown keys, no bad values, an executable ExecStart.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	requireSystemdAnalyze(t)
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range verifyUnit(t, string(unit)) {
		t.Errorf("systemd-analyze verify: %s", line)
	}
}

// TestSystemdUnitCheckSeesMistakes makes sure the check above would see a
// mistake: systemd only warns about an unknown key and still exits 0, so
// the test relies on reading the output.
func TestSystemdUnitCheckSeesMistakes(t *testing.T) {
	t.Parallel()
	requireSystemdAnalyze(t)
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(unit), "\nNoNewPrivileges=yes", "\nNoNewPrivilege=yes", 1)
	if bad == string(unit) {
		t.Fatal("the unit has no NoNewPrivileges=yes line to misspell")
	}
	about := verifyUnit(t, bad)
	if !strings.Contains(strings.Join(about, "\n"), "NoNewPrivilege") {
		t.Errorf("systemd-analyze verify said nothing about the misspelt key NoNewPrivilege; got %q", about)
	}
}
