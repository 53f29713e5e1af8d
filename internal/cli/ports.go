package cli

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.bug.st/serial/enumerator"
)

// portInfo describes a serial port found on this machine.
type portInfo struct {
	Path         string `json:"path"`
	USB          bool   `json:"usb"`
	VID          string `json:"vid,omitempty"`
	PID          string `json:"pid,omitempty"`
	SerialNumber string `json:"serial_number,omitempty"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Product      string `json:"product,omitempty"`
}

// describe returns "vid:pid product", or "" for a port that is not USB.
func (p portInfo) describe() string {
	if !p.USB {
		return ""
	}
	return strings.TrimSpace(fmt.Sprintf("%s:%s %s", p.VID, p.PID, p.Product))
}

// listPorts returns the serial ports that go.bug.st/serial enumerates, plus
// any /dev/ttyUSB* and /dev/ttyACM* it missed, sorted by path. The error is
// the enumerator's; the ports found by name are returned even then.
func listPorts() ([]portInfo, error) {
	var ports []portInfo
	details, err := enumerator.GetDetailedPortsList()
	for _, d := range details {
		if d.Name == "" {
			continue
		}
		ports = append(ports, portInfo{
			Path: d.Name, USB: d.IsUSB, VID: d.VID, PID: d.PID,
			SerialNumber: d.SerialNumber, Manufacturer: d.Manufacturer, Product: d.Product,
		})
	}
	for _, pattern := range []string{"/dev/ttyUSB*", "/dev/ttyACM*"} {
		names, _ := filepath.Glob(pattern) // the patterns are well formed
		for _, name := range names {
			if !slices.ContainsFunc(ports, func(p portInfo) bool { return p.Path == name }) {
				ports = append(ports, portInfo{Path: name})
			}
		}
	}
	slices.SortFunc(ports, func(a, b portInfo) int { return strings.Compare(a.Path, b.Path) })
	return ports, err
}

func newPortsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ports",
		Short: "List the serial ports of this machine",
		Long: `List the serial ports of this machine, with USB vendor and product IDs,
serial number and product name where the kernel knows them. An ESP32 board
usually shows up as /dev/ttyUSB0 (CP210x, CH340) or /dev/ttyACM0 (USB CDC).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ports, err := listPorts()
			if err != nil {
				log := loggerFor(cmd)
				log.Warn().Err(err).Msg("listing serial ports; showing /dev/ttyUSB* and /dev/ttyACM* only")
			}
			if ports == nil {
				ports = []portInfo{} // JSON [] rather than null
			}
			return printerFor(cmd).Result(ports, func(w io.Writer) {
				if len(ports) == 0 {
					fmt.Fprintln(w, "no serial ports found (is the adapter plugged in?)")
					return
				}
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "PORT\tUSB ID\tSERIAL\tPRODUCT")
				for _, p := range ports {
					id := ""
					if p.USB {
						id = p.VID + ":" + p.PID
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Path, id, p.SerialNumber, p.Product)
				}
				tw.Flush()
			})
		},
	}
}
