// Command uartproxy gives a computer network access through an ESP32 on a
// serial line. The commands live in internal/cli; this file only runs them.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/uartproxy/uartproxy/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once
	}()

	err := cli.NewRoot().ExecuteContext(ctx)
	if err == nil || (errors.Is(err, context.Canceled) && ctx.Err() != nil) {
		return // finished, or stopped by a signal as asked
	}
	fmt.Fprintln(os.Stderr, "uartproxy:", err)
	var usage *cli.UsageError
	if errors.As(err, &usage) {
		os.Exit(2)
	}
	os.Exit(1)
}
