// Package cli builds the uartproxy command line: the root command, one file
// per subcommand, logging set-up (logging.go) and command output (output.go).
// It is the only package that sets up output; the packages it drives get a
// zerolog.Logger in their Config.
//
// To add a subcommand, write newXCmd() *cobra.Command in x.go and list it in
// subcommands below. Its RunE returns errors (a *UsageError for a bad command
// line); loggerFor(cmd) gives the logger, printerFor(cmd) prints the result,
// and cmd.Context() is cancelled on SIGINT and SIGTERM. Subcommands must not
// set PersistentPreRun: cobra would then skip the root's, which sets up
// logging. Nothing here is shared between goroutines.
package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// subcommands is the list of uartproxy's subcommands, in no particular order:
// help lists them sorted.
func subcommands() []*cobra.Command {
	return []*cobra.Command{
		newBenchCmd(),
		newEmulateCmd(),
		newFlashCmd(),
		newPortsCmd(),
		newServeCmd(),
		newSniffCmd(),
		newVersionCmd(),
	}
}

// flagJSON is the persistent flag that switches command output to JSON.
const flagJSON = "json"

// NewRoot returns the uartproxy command with all its subcommands.
func NewRoot() *cobra.Command {
	var logs logFlags
	root := &cobra.Command{
		Use:   "uartproxy",
		Short: "Network access for this computer through an ESP32 on a serial line",
		Long: `uartproxy gives this computer network access through an ESP32 on a serial
line. The ESP32 does the Wi-Fi, DNS, TCP, UDP and TLS; uartproxy talks to it
over the UART with checksummed, retransmitted frames and exposes the
connections here as port forwards and a SOCKS5 proxy.

Find the adapter with 'uartproxy ports'. Results print as text, or as one
JSON object per line with --json; logs go to stderr.`,
		Args:          rootArgs,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		SilenceErrors: true, // main prints the error, once
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			log := logs.newLogger(cmd.ErrOrStderr())
			cmd.SetContext(log.WithContext(cmd.Context()))
			return nil
		},
	}
	logs.addTo(root)
	root.PersistentFlags().Bool(flagJSON, false, "print results as JSON, one object per line")
	root.SuggestionsMinimumDistance = 2
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{Err: err} })
	root.AddCommand(subcommands()...)
	checkArgs(root)
	return root
}

// rootArgs rejects an unknown subcommand. cobra's own check for that happens
// before the Args hook, where it cannot be made a *UsageError.
func rootArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return fmt.Errorf("%s; see '%s --help'", msg, cmd.CommandPath())
}
