package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Printer prints the results of commands on stdout: as text for people, or
// with --json as one JSON object per line (JSON Lines) for programs, so that
// a command that prints many results can be piped into jq. Logs and errors go
// to stderr, never through the Printer.
type Printer struct {
	w      io.Writer
	asJSON bool
}

// NewPrinter returns a Printer writing to w, in JSON if asJSON.
func NewPrinter(w io.Writer, asJSON bool) *Printer {
	return &Printer{w: w, asJSON: asJSON}
}

// printerFor returns the Printer for cmd's output and --json flag.
func printerFor(cmd *cobra.Command) *Printer {
	asJSON, _ := cmd.Flags().GetBool(flagJSON)
	return NewPrinter(cmd.OutOrStdout(), asJSON)
}

// Result prints v, marshalled as JSON or, for text, by calling text. text may
// ignore write errors: Result returns the first one.
func (p *Printer) Result(v any, text func(w io.Writer)) error {
	if p.asJSON {
		if err := json.NewEncoder(p.w).Encode(v); err != nil {
			return fmt.Errorf("print result: %w", err)
		}
		return nil
	}
	ew := &errWriter{w: p.w}
	text(ew)
	if ew.err != nil {
		return fmt.Errorf("print result: %w", ew.err)
	}
	return nil
}

// errWriter remembers the first write error and drops writes after it.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}
