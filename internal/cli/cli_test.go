package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// run executes root with args in-process and returns what it printed.
func run(t *testing.T, root *cobra.Command, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err = root.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

func TestVersionText(t *testing.T) {
	out, _, err := run(t, NewRoot(), "version")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("uartproxy dev\ncommit    dev\ngo        %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if out != want {
		t.Errorf("version printed\n%s\nwant\n%s", out, want)
	}
}

func TestVersionJSON(t *testing.T) {
	out, _, err := run(t, NewRoot(), "version", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Errorf("want one line of JSON, got %q", out)
	}
	var got versionInfo
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	want := versionInfo{Version: "dev", Commit: "dev", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if got != want {
		t.Errorf("version --json = %+v, want %+v", got, want)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string // in the message
	}{
		{[]string{"--log-level", "loud", "version"}, `invalid argument "loud" for "--log-level" flag: want one of trace, debug, info, warn, error`},
		{[]string{"--log-format", "xml", "version"}, `invalid argument "xml" for "--log-format" flag`},
		{[]string{"version", "--nope"}, "unknown flag: --nope"},
		{[]string{"version", "extra"}, `"uartproxy version" takes no arguments`},
		{[]string{"verison"}, `unknown command "verison" for "uartproxy" (did you mean "version"?)`},
		{[]string{"bogus"}, `unknown command "bogus" for "uartproxy"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, _, err := run(t, NewRoot(), tt.args...)
			var usage *UsageError
			if !errors.As(err, &usage) {
				t.Fatalf("error %v (%T), want a *UsageError", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if out != "" {
				t.Errorf("printed %q on a usage error", out)
			}
		})
	}
}

func TestNoArgsPrintsHelp(t *testing.T) {
	out, _, err := run(t, NewRoot())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Available Commands:") {
		t.Errorf("uartproxy with no arguments printed %q, want the help", out)
	}
}

func TestLogging(t *testing.T) {
	newRoot := func() *cobra.Command {
		root := NewRoot()
		root.AddCommand(&cobra.Command{
			Use: "logtest",
			RunE: func(cmd *cobra.Command, _ []string) error {
				log := loggerFor(cmd)
				log.Debug().Msg("a debug line")
				log.Info().Str("port", "/dev/ttyUSB0").Msg("an info line")
				return nil
			},
		})
		return root
	}

	// Not a terminal: auto means JSON.
	_, logs, err := run(t, newRoot(), "logtest")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if len(lines) != 1 {
		t.Fatalf("at the default level want 1 log line, got %q", logs)
	}
	var line struct{ Level, Message, Port, Time string }
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatalf("%v in %q", err, lines[0])
	}
	if line.Level != "info" || line.Message != "an info line" || line.Port != "/dev/ttyUSB0" {
		t.Errorf("log line %+v", line)
	}
	if len(line.Time) != len("2006-01-02T15:04:05.000Z") && len(line.Time) != len("2006-01-02T15:04:05.000-07:00") {
		t.Errorf("time %q: want RFC 3339 with milliseconds", line.Time)
	}

	_, logs, err = run(t, newRoot(), "--log-level", "debug", "--log-format", "console", "logtest")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, "DBG a debug line") || !strings.Contains(logs, "INF an info line port=/dev/ttyUSB0") {
		t.Errorf("console logs at debug level:\n%s", logs)
	}
	if strings.Contains(logs, "\x1b[") {
		t.Errorf("console logs to a non-terminal are coloured: %q", logs)
	}
}

func TestPrinter(t *testing.T) {
	v := struct {
		Name string `json:"name"`
	}{"ttyUSB0"}
	text := func(w io.Writer) { fmt.Fprintf(w, "port %s\n", v.Name) }

	var b bytes.Buffer
	if err := NewPrinter(&b, false).Result(v, text); err != nil || b.String() != "port ttyUSB0\n" {
		t.Errorf("text: %q, %v", b.String(), err)
	}
	b.Reset()
	if err := NewPrinter(&b, true).Result(v, text); err != nil || b.String() != "{\"name\":\"ttyUSB0\"}\n" {
		t.Errorf("json: %q, %v", b.String(), err)
	}
	if err := NewPrinter(failWriter{}, false).Result(v, text); err == nil {
		t.Error("text: a write error was not returned")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestPortsJSON(t *testing.T) {
	out, _, err := run(t, NewRoot(), "ports", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var ports []portInfo
	if err := json.Unmarshal([]byte(out), &ports); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	if ports == nil {
		t.Errorf("ports --json printed %q, want a JSON array", out)
	}
}
