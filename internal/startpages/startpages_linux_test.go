package startpages

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestParseMaps(t *testing.T) {
	const maps = `00400000-01562000 r-xp 00000000 fe:00 9978257                            /usr/bin/eventide
01562000-02880000 r--p 01162000 fe:00 9978257                            /usr/bin/eventide
02880000-02925000 rw-p 02480000 fe:00 9978257                            /usr/bin/eventide
02925000-02992000 rw-p 00000000 00:00 0
02a00000-02b00000 r--s 00000000 fe:00 9978257                            /usr/bin/eventide
03000000-03001000 r--p 00000000 fe:01 9978257                            /other/device/same/inode
03100000-03101000 r--p 00000000 fe:00 9978258                            /usr/bin/other
7ffd1000-7ffd3000 r-xp 00000000 00:00 0                                  [vdso]
04000000-04010000 r-xp 00000000 fe:00 9978257                            /usr/bin/eventide (deleted)
`
	want := []addrRange{{0x400000, 0x1562000}, {0x1562000, 0x2880000}, {0x4000000, 0x4010000}}
	for _, pc := range []uintptr{0x400000, 0x40ffff, 0x1000000, 0x1562abc, 0x4000010} {
		got, err := parseMaps([]byte(maps), pc)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("parseMaps(pc %#x) = %x, want %x (the read-only private mappings of fe:00 inode 9978257)", pc, got, want)
		}
	}
	if got, err := parseMaps([]byte(maps), 0x3100010); err != nil || !slices.Equal(got, []addrRange{{0x3100000, 0x3101000}}) {
		t.Errorf("parseMaps(pc in /usr/bin/other) = %x, %v", got, err)
	}
	for _, pc := range []uintptr{0x3000, 0x2925000, 0x7ffd1100} { // unmapped; anonymous; the vDSO
		if got, err := parseMaps([]byte(maps), pc); err == nil {
			t.Errorf("parseMaps(pc %#x) = %x, want an error", pc, got)
		}
	}
	if _, err := parseMaps([]byte("02000000-01000000 r-xp 00000000 fe:00 9978257 /usr/bin/eventide\n"), 0x1800000); err == nil {
		t.Error("parseMaps accepted a mapping that ends before it starts")
	}
}

// written is in .data or .bss, a writable private mapping of the binary: a release must leave
// what the process wrote there.
var written = []int{1, 2, 3}

// exeResident counts the resident pages of the executable's read-only mappings, in bytes, from
// /proc/self/pagemap (its present bit needs no privilege). RssFile would count other files too:
// a -race binary maps libc and the dynamic loader.
func exeResident(t *testing.T) int64 {
	t.Helper()
	ranges, err := executableRanges()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := uintptr(os.Getpagesize())
	var n int64
	for _, r := range ranges {
		buf := make([]byte, (r.end-r.start)/page*8)
		if _, err := f.ReadAt(buf, int64(r.start/page*8)); err != nil {
			t.Fatal(err)
		}
		for i := 0; i+8 <= len(buf); i += 8 {
			if binary.LittleEndian.Uint64(buf[i:])>>63 == 1 {
				n += int64(page)
			}
		}
	}
	return n
}

// TestRelease: in this test binary, the pages of the executable that start-up and the tests
// before read leave the process, the process goes on running (code and read-only data fault
// back in), and what it wrote to its writable mappings is kept.
func TestRelease(t *testing.T) {
	written[1] = 42
	before := exeResident(t)
	res, err := Release()
	after := exeResident(t)
	if errors.Is(err, ErrTraced) {
		t.Skip("run under a debugger")
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.Ranges < 2 || res.Bytes <= 0 {
		t.Errorf("released %d ranges of %d bytes; want the text and the read-only data at least", res.Ranges, res.Bytes)
	}
	// The test binary has 2.6–3.7 MiB of itself resident by now. After the release, what runs
	// before the count (the status and maps reads, the count itself, each touched page with its
	// 64 KiB fault-around) brings 1.7–2.2 MiB back; without it nothing would leave.
	if before-after < 512<<10 {
		t.Errorf("%d KiB of the executable resident before the release, %d KiB after; want ≥ 512 KiB fewer", before>>10, after>>10)
	}
	if written[1] != 42 {
		t.Errorf("a write to the binary's writable data was lost: %v", written)
	}
	// Code that had not run yet, and read-only data (strings, tables), still work.
	if got := strings.ToUpper(strings.Repeat("é", 3)); got != "ÉÉÉ" {
		t.Errorf("after the release: %q", got)
	}
	t.Logf("released %d ranges (%d MiB mapped): the executable's resident pages %d → %d KiB (RssFile %d → %d KiB)",
		res.Ranges, res.Bytes>>20, before>>10, after>>10, res.FileBefore>>10, res.FileAfter>>10)
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
	var ws syscall.WaitStatus
	for {
		if _, err := syscall.Wait4(pid, &ws, syscall.WALL, nil); err != nil {
			t.Fatal(err)
		}
		if ws.Exited() || ws.Signaled() {
			break
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
	_ = cmd.Wait() // the child is reaped already (its error says so); this waits for its output
	if ws.Signaled() {
		t.Fatalf("traced child killed by %v:\n%s", ws.Signal(), out.String())
	}
	if ws.ExitStatus() != 0 {
		t.Fatalf("traced child exited %d:\n%s", ws.ExitStatus(), out.String())
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
