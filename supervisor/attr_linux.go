package supervisor

import "syscall"

// childAttr makes the child get SIGTERM when the parent dies, even by SIGKILL, so it is never
// left serving unsupervised on the port.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
