package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// UsageError is a mistake in the command line: an unknown command or flag, a
// bad flag value, a stray argument. main exits with status 2 for it, and 1
// for any other error.
type UsageError struct {
	Err error
}

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// usageErrorf returns a *UsageError with a formatted message.
func usageErrorf(format string, a ...any) error {
	return &UsageError{Err: fmt.Errorf(format, a...)}
}

// checkArgs makes cmd and its subcommands report argument errors as
// *UsageError, and makes a command without an Args check take no arguments.
func checkArgs(cmd *cobra.Command) {
	check := cmd.Args
	if check == nil {
		check = noArgs
	}
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &UsageError{Err: err}
		}
		return nil
	}
	for _, sub := range cmd.Commands() {
		checkArgs(sub)
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%q takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}
