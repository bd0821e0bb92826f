package startpages

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

func TestParseMaps(t *testing.T) {
	const maps = `00400000-01562000 r-xp 00000000 fe:00 9978257                            /usr/bin/eventide
01562000-02880000 r--p 01162000 fe:00 9978257                            /usr/bin/eventide
02880000-02925000 rw-p 02480000 fe:00 9978257                            /usr/bin/eventide
02925000-04992000 rw-p 00000000 00:00 0
02a00000-02b00000 r--s 00000000 fe:00 9978257                            /usr/bin/eventide
03000000-03001000 r--p 00000000 fe:01 9978257                            /other/device/same/inode
03100000-03101000 r--p 00000000 fe:00 9978258                            /usr/bin/other
7ffd1000-7ffd3000 r-xp 00000000 00:00 0                                  [vdso]
04000000-04010000 r-xp 00000000 fe:00 9978257                            /usr/bin/eventide (deleted)
`
	got, err := parseMaps([]byte(maps), 0xfe, 0, 9978257)
	if err != nil {
		t.Fatal(err)
	}
	want := []addrRange{{0x400000, 0x1562000}, {0x1562000, 0x2880000}, {0x4000000, 0x4010000}}
	if len(got) != len(want) {
		t.Fatalf("parseMaps = %x, want %x (the read-only private mappings of fe:00 inode 9978257)", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("parseMaps = %x, want %x", got, want)
		}
	}
	if _, err := parseMaps([]byte("02000000-01000000 r-xp 00000000 fe:00 9978257 /usr/bin/eventide\n"), 0xfe, 0, 9978257); err == nil {
		t.Error("parseMaps accepted a mapping that ends before it starts")
	}
}

// written is in .data or .bss, a writable private mapping of the binary: a release must leave
// what the process wrote there.
var written = []int{1, 2, 3}

func rssFile(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	n, ok := statusField(b, "RssFile")
	if !ok {
		t.Fatalf("no RssFile in /proc/self/status:\n%s", b)
	}
	return n
}

// TestRelease: in this test binary, the pages of the executable that start-up and the tests
// before read leave the process, the process goes on running (code and read-only data fault
// back in), and what it wrote to its writable mappings is kept.
func TestRelease(t *testing.T) {
	written[1] = 42
	before := rssFile(t)
	res, err := Release()
	if errors.Is(err, ErrTraced) {
		t.Skip("run under a debugger")
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.Ranges < 2 || res.Bytes <= 0 {
		t.Errorf("released %d ranges of %d bytes; want the text and the read-only data at least", res.Ranges, res.Bytes)
	}
	// The test binary maps several MiB of itself by now; after the release only the pages
	// touched since (this function, the runtime's, the status read) come back.
	if res.FileBefore < 1<<20 || res.FileAfter*2 > res.FileBefore {
		t.Errorf("RssFile %d KiB before, %d KiB after the release; want it at least halved (the test saw %d KiB before)",
			res.FileBefore>>10, res.FileAfter>>10, before>>10)
	}
	if written[1] != 42 {
		t.Errorf("a write to the binary's writable data was lost: %v", written)
	}
	// Code that had not run yet, and read-only data (strings, tables), still work.
	if got := strings.ToUpper(strings.Repeat("é", 3)); got != "ÉÉÉ" {
		t.Errorf("after the release: %q", got)
	}
	t.Logf("released %d ranges (%d MiB mapped): RssFile %d → %d KiB",
		res.Ranges, res.Bytes>>20, res.FileBefore>>10, res.FileAfter>>10)
}

// TestReleaseUnderTracer: with a debugger attached (here: this test, tracing a child copy of
// itself), Release does nothing: a debugger's breakpoints are private copies of code pages.
func TestReleaseUnderTracer(t *testing.T) {
	if os.Getenv("STARTPAGES_TRACED_CHILD") != "" {
		_, err := Release()
		if !errors.Is(err, ErrTraced) {
			os.Stdout.WriteString("released under a tracer: " + errString(err) + "\n")
			os.Exit(3)
		}
		os.Exit(0)
	}
	runtime.LockOSThread() // ptrace requests come from the thread that started the tracee
	defer runtime.UnlockOSThread()
	cmd := exec.Command(os.Args[0], "-test.run=^TestReleaseUnderTracer$")
	cmd.Env = append(os.Environ(), "STARTPAGES_TRACED_CHILD=1")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	for {
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, syscall.WALL, nil); err != nil {
			t.Fatal(err)
		}
		if ws.Exited() {
			if ws.ExitStatus() != 0 {
				t.Fatalf("traced child exited %d:\n%s", ws.ExitStatus(), out.String())
			}
			return
		}
		if ws.Signaled() {
			t.Fatalf("traced child killed by %v:\n%s", ws.Signal(), out.String())
		}
		// Stopped: at its exec (SIGTRAP, not passed on), or by a signal the runtime uses
		// (SIGURG for preemption, passed on).
		sig := 0
		if ws.Stopped() && ws.StopSignal() != syscall.SIGTRAP {
			sig = int(ws.StopSignal())
		}
		if err := syscall.PtraceCont(pid, sig); err != nil {
			t.Fatal(err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
