// Command depot is the single binary of depot: both tiers, the command-line
// client and the operator tools. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"depot/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
