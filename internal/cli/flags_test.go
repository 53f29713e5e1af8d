package cli

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/creack/pty"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
)

func TestSerialFlagsValidate(t *testing.T) {
	tests := []struct {
		name  string
		flags serialFlags
		want  string // in the error; "" for valid
	}{
		{"defaults", serialFlags{Port: "/dev/ttyUSB0", Baud: 921600, Flow: flowRTSCTS}, ""},
		{"no flow control", serialFlags{Port: "/dev/ttyUSB0", Baud: 115200, Flow: flowNone}, ""},
		{"no port", serialFlags{Baud: 921600, Flow: flowRTSCTS}, ""}, // Open requires it
		{"zero baud", serialFlags{Port: "/dev/ttyUSB0", Baud: 0, Flow: flowRTSCTS}, "--baud 0: want a positive rate"},
		{"negative baud", serialFlags{Port: "/dev/ttyUSB0", Baud: -9600, Flow: flowRTSCTS}, "--baud -9600"},
		{"bad flow", serialFlags{Port: "/dev/ttyUSB0", Baud: 921600, Flow: "xonxoff"}, `--flow "xonxoff": want rtscts or none`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.flags.Validate()
			if tt.want == "" {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			var usage *UsageError
			if !errors.As(err, &usage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate: %v, want a *UsageError saying %q", err, tt.want)
			}
		})
	}
}

// serialRoot returns the root command with a subcommand "open" that has the
// serial flags, and where its flags end up.
func serialRoot() (*cobra.Command, *serialFlags) {
	var sf serialFlags
	cmd := &cobra.Command{
		Use: "open",
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := sf.Open(loggerFor(cmd))
			if err != nil {
				return err
			}
			return p.Close()
		},
	}
	sf.AddTo(cmd)
	root := NewRoot()
	root.AddCommand(cmd)
	return root, &sf
}

func TestSerialFlagsParse(t *testing.T) {
	tests := []struct {
		args []string
		want string // in the error of a *UsageError
	}{
		{[]string{"--baud", "fast"}, `invalid argument "fast" for "-b, --baud" flag`},
		{[]string{"--flow", "xon"}, `invalid argument "xon" for "--flow" flag: want one of rtscts, none`},
		{[]string{"-b", "0", "-p", "/dev/ttyUSB0"}, "--baud 0"},
		{[]string{"--flow", "none"}, "--port is required"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			root, _ := serialRoot()
			_, _, err := run(t, root, append([]string{"open"}, tt.args...)...)
			var usage *UsageError
			if !errors.As(err, &usage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want a *UsageError saying %q", err, tt.want)
			}
		})
	}

	root, sf := serialRoot()
	if _, _, err := run(t, root, "open", "--port", "/nonexistent/ttyUSB0", "-b", "115200", "--flow", "none"); err == nil {
		t.Error("opening a missing device succeeded")
	}
	if !reflect.DeepEqual(*sf, serialFlags{Port: "/nonexistent/ttyUSB0", Baud: 115200, Flow: flowNone}) {
		t.Errorf("flags parsed as %+v", *sf)
	}
	root, sf = serialRoot()
	run(t, root, "open")
	if !reflect.DeepEqual(*sf, serialFlags{Baud: 921600, Flow: flowRTSCTS}) {
		t.Errorf("defaults: %+v", *sf)
	}
}

func TestSerialFlagsOpenPty(t *testing.T) {
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()

	sf := serialFlags{Port: slave.Name(), Baud: 921600, Flow: flowRTSCTS}
	p, err := sf.Open(zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Path() != slave.Name() {
		t.Errorf("opened %s, want %s", p.Path(), slave.Name())
	}
}

func TestPortCompletion(t *testing.T) {
	root, _ := serialRoot()
	out, _, err := run(t, root, cobra.ShellCompRequestCmd, "open", "--port", "/dev/")
	if err != nil {
		t.Fatal(err)
	}
	// The candidates depend on the machine; the directive does not: with no
	// match the shell falls back to file names.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if last := lines[len(lines)-1]; last != ":0" {
		t.Errorf("completion ended with %q, want the directive :0", last)
	}
	for _, l := range lines[:len(lines)-1] {
		if !strings.HasPrefix(l, "/dev/") {
			t.Errorf("candidate %q does not start with /dev/", l)
		}
	}

	out, _, err = run(t, NewRoot(), cobra.ShellCompRequestCmd, "--log-level", "")
	if err != nil {
		t.Fatal(err)
	}
	if want := "trace\ndebug\ninfo\nwarn\nerror\n:4\n"; !strings.HasPrefix(out, want) {
		t.Errorf("--log-level completion %q, want %q", out, want)
	}
}
