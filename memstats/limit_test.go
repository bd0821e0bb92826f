package memstats

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

// cgroupFS writes files (path relative to the root → content) into a fresh directory.
func cgroupFS(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestApplyMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	const gib = 1 << 30
	tests := []struct {
		name       string
		configured int64
		preset     int64 // a limit already set, as by GOMEMLIMIT
		files      map[string]string
		want, soft int64
	}{
		{name: "None", files: map[string]string{"memory.max": "max"}, want: 0, soft: math.MaxInt64},
		{name: "Configured", configured: gib / 4, files: map[string]string{"memory.max": "1073741824"},
			want: gib / 4, soft: gib / 4},
		{name: "ConfiguredAboveCgroup", configured: 2 * gib, files: map[string]string{"memory.max": "1073741824"},
			want: 2 * gib, soft: 2 * gib},
		{name: "GOMEMLIMITKept", preset: 123 << 20, want: 123 << 20, soft: 123 << 20},
		{name: "CgroupV2", files: map[string]string{"memory.max": "1073741824"},
			want: gib, soft: gib * 9 / 10},
		{name: "CgroupV1", files: map[string]string{"memory/memory.limit_in_bytes": "524288000"},
			want: 500 << 20, soft: 450 << 20},
		{name: "CgroupV1Unlimited", files: map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712"},
			want: 0, soft: math.MaxInt64},
		{name: "NoCgroupFS", want: 0, soft: math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetMemoryLimit(math.MaxInt64)
			if tt.preset > 0 {
				debug.SetMemoryLimit(tt.preset)
			}
			root := cgroupFS(t, tt.files)
			if got := ApplyMemoryLimitUnder(root, tt.configured, nil); got != tt.want {
				t.Errorf("limit in force %d, want %d", got, tt.want)
			}
			if got := debug.SetMemoryLimit(-1); got != tt.soft {
				t.Errorf("runtime soft limit %d, want %d", got, tt.soft)
			}
		})
	}
}

func TestApplyMemoryLimitTwice(t *testing.T) {
	prev := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	root := cgroupFS(t, map[string]string{"memory.max": "1073741824"})
	for i := range 2 { // the second call must not take the first one's soft limit for GOMEMLIMIT
		if got := ApplyMemoryLimitUnder(root, 0, nil); got != 1<<30 {
			t.Fatalf("call %d: limit in force %d, want the cgroup's", i+1, got)
		}
	}
}

func TestCgroupMemoryLimit(t *testing.T) {
	t.Run("SystemdUnitLowestOnPath", func(t *testing.T) {
		root := cgroupFS(t, map[string]string{
			"system.slice/memory.max":                  "536870912",
			"system.slice/eventide.service/memory.max": "1073741824",
		})
		if got := cgroupMemoryLimit(root, []byte("0::/system.slice/eventide.service\n")); got != 1<<29 {
			t.Fatalf("got %d, want the slice's 512 MiB", got)
		}
	})
	t.Run("ContainerSeesItsCgroupAsRoot", func(t *testing.T) {
		root := cgroupFS(t, map[string]string{"memory/memory.limit_in_bytes": "268435456"})
		self := []byte("12:pids:/docker/abc\n4:memory:/docker/abc\n0::/docker/abc\n")
		if got := cgroupMemoryLimit(root, self); got != 1<<28 {
			t.Fatalf("got %d, want 256 MiB", got)
		}
	})
	t.Run("V2WinsOverV1", func(t *testing.T) {
		root := cgroupFS(t, map[string]string{
			"memory.max":                   "1073741824",
			"memory/memory.limit_in_bytes": "268435456",
		})
		if got := cgroupMemoryLimit(root, []byte("4:memory:/\n0::/\n")); got != 1<<30 {
			t.Fatalf("got %d", got)
		}
	})
	t.Run("Garbage", func(t *testing.T) {
		root := cgroupFS(t, map[string]string{"memory.max": "lots"})
		if got := cgroupMemoryLimit(root, []byte("nonsense\n0::/../../etc\n")); got != 0 {
			t.Fatalf("got %d", got)
		}
	})
	t.Run("ThisMachine", func(t *testing.T) {
		t.Logf("cgroup memory limit here: %d", CgroupMemoryLimit(DefaultCgroupRoot))
	})
}
