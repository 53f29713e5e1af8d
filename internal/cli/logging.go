package cli

import (
	"io"
	"os"
	"sync"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
)

// Values of --log-format.
const (
	logAuto    = "auto"
	logConsole = "console"
	logJSON    = "json"
)

// logFlags are the persistent --log-level and --log-format flags.
type logFlags struct {
	level  string
	format string
}

func (f *logFlags) addTo(root *cobra.Command) {
	fs := root.PersistentFlags()
	addEnum(root, fs, &f.level, "log-level", "info", "least severe log level shown",
		"trace", "debug", "info", "warn", "error")
	addEnum(root, fs, &f.format, "log-format", logAuto, "log format; auto is console on a terminal, json otherwise",
		logAuto, logConsole, logJSON)
}

// timeFormat gives log timestamps milliseconds, which a serial link needs.
// zerolog keeps the format in a global.
var timeFormat = sync.OnceFunc(func() { zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00" })

// newLogger returns the logger the flags ask for, writing to w.
func (f *logFlags) newLogger(w io.Writer) zerolog.Logger {
	timeFormat()
	level, err := zerolog.ParseLevel(f.level)
	if err != nil { // not from the command line, which enumValue checks
		level = zerolog.InfoLevel
	}
	tty := isTerminal(w)
	out := w
	if f.format == logConsole || (f.format == logAuto && tty) {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000", NoColor: !tty}
	}
	// Several goroutines log at once (link, mux, device): serialize writes.
	return zerolog.New(zerolog.SyncWriter(out)).Level(level).With().Timestamp().Logger()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// loggerFor returns the logger that the root command set up for cmd, or a
// disabled one if cmd runs outside it.
func loggerFor(cmd *cobra.Command) zerolog.Logger {
	return *zerolog.Ctx(cmd.Context())
}
