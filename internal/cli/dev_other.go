//go:build !linux

package cli

import "syscall"

// childAttrs: only Linux can tie a child's life to its parent's; elsewhere
// a depot dev killed without a chance to stop its tiers leaves them running.
func childAttrs() *syscall.SysProcAttr { return nil }
