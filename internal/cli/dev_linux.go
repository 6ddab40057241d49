package cli

import "syscall"

// childAttrs makes the kernel send SIGTERM to a child of depot dev when
// depot dev dies, even by SIGKILL or a crash, so that no tier is left
// running without it. (Linux delivers it when the thread that started the
// child exits; Go keeps that thread for the process's life unless a
// goroutine locked to it exits, which depot dev never does.)
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
