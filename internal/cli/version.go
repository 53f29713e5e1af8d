package cli

import (
	"fmt"
	"io"
	"runtime"

	"github.com/spf13/cobra"
)

// version and commit are set at build time by the Makefile:
//
//	-ldflags "-X github.com/uartproxy/uartproxy/internal/cli.version=..."
var (
	version = "dev"
	commit  = "dev"
)

type versionInfo struct {
	Version  string `json:"version"`
	Commit   string `json:"commit"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of uartproxy",
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := versionInfo{
				Version:  version,
				Commit:   commit,
				Go:       runtime.Version(),
				Platform: runtime.GOOS + "/" + runtime.GOARCH,
			}
			return printerFor(cmd).Result(v, func(w io.Writer) {
				fmt.Fprintf(w, "uartproxy %s\ncommit    %s\ngo        %s %s\n", v.Version, v.Commit, v.Go, v.Platform)
			})
		},
	}
}
