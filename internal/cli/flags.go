package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/uartproxy/uartproxy/internal/serialport"
)

// enumValue is a string flag that takes one of a fixed set of values, so a
// typo fails while parsing (as a *UsageError) and the shell can complete it.
type enumValue struct {
	p       *string
	list    *[]string // non-nil: a comma-separated list is allowed; *p is its first value
	allowed []string
}

// addEnum defines the flag name on fs, with default def, and its completion
// on cmd. *p is set to def.
func addEnum(cmd *cobra.Command, fs *pflag.FlagSet, p *string, name, def, usage string, allowed ...string) {
	*p = def
	fs.Var(&enumValue{p: p, allowed: allowed}, name, usage)
	cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(allowed, cobra.ShellCompDirectiveNoFileComp))
}

func (e *enumValue) String() string { return *e.p }
func (e *enumValue) Type() string   { return strings.Join(e.allowed, "|") }

func (e *enumValue) Set(s string) error {
	vals := []string{s}
	if e.list != nil {
		vals = strings.Split(s, ",")
	}
	for _, v := range vals {
		if !slices.Contains(e.allowed, v) {
			if e.list != nil {
				return fmt.Errorf("want a comma-separated list of %s", strings.Join(e.allowed, ", "))
			}
			return fmt.Errorf("want one of %s", strings.Join(e.allowed, ", "))
		}
	}
	*e.p = vals[0]
	if e.list != nil {
		*e.list = vals
	}
	return nil
}

// Values of --flow.
const (
	flowRTSCTS = "rtscts"
	flowNone   = "none"
)

// serialFlags are the flags of a command that opens a serial port.
type serialFlags struct {
	Port string
	Baud int
	Flow string
	// FlowList, set before AddTo, lets --flow take a list (bench's
	// sweep); Flows holds it and Flow its first value.
	FlowList bool
	Flows    []string
}

// AddTo defines --port, --baud and --flow on cmd, with completion for --port.
func (f *serialFlags) AddTo(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVarP(&f.Port, "port", "p", "", "serial device of the ESP32, e.g. /dev/ttyUSB0 (see 'uartproxy ports')")
	fs.IntVarP(&f.Baud, "baud", "b", 921600, "line rate in bit/s (8N1)")
	if f.FlowList {
		f.Flows = []string{flowRTSCTS}
		f.Flow = flowRTSCTS
		fs.Var(&enumValue{p: &f.Flow, list: &f.Flows, allowed: []string{flowRTSCTS, flowNone}}, "flow",
			"hardware flow control; a comma-separated list sweeps them (rtscts,none)")
		cmd.RegisterFlagCompletionFunc("flow", cobra.FixedCompletions([]string{flowRTSCTS, flowNone}, cobra.ShellCompDirectiveNoFileComp))
	} else {
		addEnum(cmd, fs, &f.Flow, "flow", flowRTSCTS, "hardware flow control", flowRTSCTS, flowNone)
	}
	cmd.RegisterFlagCompletionFunc("port", completePorts)
}

// Validate checks the values that flag parsing cannot. --port may be empty:
// Open requires it, a command that can run without a device does not.
func (f *serialFlags) Validate() error {
	if f.Baud <= 0 {
		return usageErrorf("--baud %d: want a positive rate in bit/s, e.g. 921600", f.Baud)
	}
	if f.Flow != flowRTSCTS && f.Flow != flowNone {
		return usageErrorf("--flow %q: want %s or %s", f.Flow, flowRTSCTS, flowNone)
	}
	return nil
}

// Open validates the flags and opens the port. It logs a warning when RTS/CTS
// was asked for and the device could not do it.
func (f *serialFlags) Open(log zerolog.Logger) (*serialport.Port, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if f.Port == "" {
		return nil, usageErrorf("--port is required (list the candidates with 'uartproxy ports')")
	}
	p, err := serialport.Open(serialport.Config{Path: f.Port, Baud: f.Baud, FlowControl: f.Flow == flowRTSCTS})
	if err != nil {
		return nil, err
	}
	if f.Flow == flowRTSCTS && !p.FlowControl() {
		log.Warn().Str("port", f.Port).Msg("device does not do RTS/CTS flow control; running without (use --flow none to silence this)")
	}
	log.Info().Str("port", f.Port).Int("baud", f.Baud).Bool("rtscts", p.FlowControl()).Msg("serial port open")
	return p, nil
}

// completePorts completes --port with the serial ports found on this machine.
// When none matches, the shell falls back to file names (a pty, say).
func completePorts(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	ports, _ := listPorts()
	var out []cobra.Completion
	for _, p := range ports {
		if strings.HasPrefix(p.Path, toComplete) {
			out = append(out, cobra.CompletionWithDesc(p.Path, p.describe()))
		}
	}
	return out, cobra.ShellCompDirectiveDefault
}
