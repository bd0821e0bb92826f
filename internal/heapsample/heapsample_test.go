package heapsample

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

// TestOffUntilResumed: linked into a process (this test binary), the package has turned the
// heap profiler off before the test runs; Resume brings the runtime's default rate back.
func TestOffUntilResumed(t *testing.T) {
	if os.Getenv("HEAPSAMPLE_CHILD") != "" {
		// Run under GODEBUG=memprofilerate=N by TestOperatorRateKept.
		if runtime.MemProfileRate != 4096 || Off() {
			t.Fatalf("GODEBUG=memprofilerate=4096: rate %d, off %v; want 4096 left alone", runtime.MemProfileRate, Off())
		}
		return
	}
	if runtime.MemProfileRate != 0 || !Off() {
		t.Fatalf("at start: MemProfileRate %d, off %v; want 0, true", runtime.MemProfileRate, Off())
	}
	Resume()
	if runtime.MemProfileRate != defaultRate || Off() {
		t.Fatalf("after Resume: MemProfileRate %d, off %v; want %d, false", runtime.MemProfileRate, Off(), defaultRate)
	}
	Resume() // twice: no change
	if runtime.MemProfileRate != defaultRate {
		t.Fatalf("after a second Resume: %d", runtime.MemProfileRate)
	}
}

// TestOperatorRateKept: a rate the operator set with GODEBUG is not turned off.
func TestOperatorRateKept(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestOffUntilResumed$", "-test.v")
	cmd.Env = append(os.Environ(), "HEAPSAMPLE_CHILD=1", "GODEBUG=memprofilerate=4096")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestOffUntilResumed") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
