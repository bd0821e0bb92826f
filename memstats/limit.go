package memstats

import (
	"bufio"
	"bytes"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultCgroupRoot is where Linux mounts the cgroup hierarchy.
const DefaultCgroupRoot = "/sys/fs/cgroup"

// CgroupSoftLimitFraction is the share of a cgroup's memory limit given to the Go runtime as its
// soft limit when none is configured: the collector works harder near it, leaving the rest as
// headroom for memory the runtime does not count (the binary's pages, C allocations, page cache)
// before the kernel's OOM killer acts.
const CgroupSoftLimitFraction = 0.9

// ApplyMemoryLimit sets the Go runtime's soft memory limit and returns the limit in force, to be
// reported in samples, in bytes (0: none). In order of precedence:
//   - configured > 0 (MEMORY_LIMIT): the soft limit is set to it, and it is reported;
//   - a limit already set through GOMEMLIMIT is kept and reported;
//   - inside a cgroup with a memory limit (v2 memory.max, v1 memory.limit_in_bytes, the lowest
//     on the path from the process's cgroup to cgroupRoot): the soft limit is set to
//     CgroupSoftLimitFraction of it, and the cgroup limit is reported;
//   - otherwise nothing is set and 0 is returned.
//
// It is meant to be called once, at start-up. A nil log discards the one line that says what was
// chosen.
func ApplyMemoryLimit(configured int64, log *slog.Logger) (limitInForce int64) {
	return ApplyMemoryLimitUnder(DefaultCgroupRoot, configured, log)
}

// ApplyMemoryLimitUnder is ApplyMemoryLimit with the cgroup file system looked for under
// cgroupRoot instead of DefaultCgroupRoot; tests point it at a directory of their own.
func ApplyMemoryLimitUnder(cgroupRoot string, configured int64, log *slog.Logger) (limitInForce int64) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cgroup := CgroupMemoryLimit(cgroupRoot)
	soft := int64(float64(cgroup) * CgroupSoftLimitFraction)
	current := debug.SetMemoryLimit(-1)
	switch {
	case configured > 0:
		debug.SetMemoryLimit(configured)
		if cgroup > 0 && configured > cgroup {
			log.Warn("memory limit above the cgroup's: the kernel will kill the process first",
				"limit_bytes", configured, "cgroup_limit_bytes", cgroup)
		} else {
			log.Info("memory limit set", "limit_bytes", configured, "source", "MEMORY_LIMIT")
		}
		return configured
	case current != math.MaxInt64 && (cgroup == 0 || current != soft): // not our own earlier call
		log.Info("memory limit kept", "limit_bytes", current, "source", "GOMEMLIMIT")
		return current
	case cgroup > 0:
		debug.SetMemoryLimit(soft)
		log.Info("memory limit set", "limit_bytes", cgroup, "soft_limit_bytes", soft, "source", "cgroup")
		return cgroup
	default:
		log.Info("no memory limit")
		return 0
	}
}

// CgroupMemoryLimit returns the memory limit of the cgroup this process runs in, in bytes, or 0
// when there is none (or no cgroup file system under root). It reads /proc/self/cgroup to find the
// process's cgroup below root (a systemd unit's MemoryMax=), and root itself (a container, which
// sees its own cgroup as the root).
func CgroupMemoryLimit(root string) int64 {
	self, _ := os.ReadFile("/proc/self/cgroup")
	return cgroupMemoryLimit(root, self)
}

// cgroupMemoryLimit is CgroupMemoryLimit with the content of /proc/self/cgroup given. A cgroup v2
// limit wins over v1 when both are mounted; the lowest limit on the path up to root applies.
func cgroupMemoryLimit(root string, self []byte) int64 {
	v2, v1 := "/", "/"
	sc := bufio.NewScanner(bytes.NewReader(self))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		case containsController(parts[1], "memory"):
			v1 = parts[2]
		}
	}
	if l := lowestLimit(root, v2, "memory.max"); l > 0 {
		return l
	}
	return lowestLimit(filepath.Join(root, "memory"), v1, "memory.limit_in_bytes")
}

func containsController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// lowestLimit returns the lowest limit in file found in the directories from base/path up to base.
func lowestLimit(base, path, file string) int64 {
	var lowest int64
	dir := filepath.Join(base, filepath.Clean("/"+path))
	for {
		if l := readLimit(filepath.Join(dir, file)); l > 0 && (lowest == 0 || l < lowest) {
			lowest = l
		}
		if dir == base || len(dir) < len(base) {
			return lowest
		}
		dir = filepath.Dir(dir)
	}
}

// unlimitedV1 is above any real limit: cgroup v1 says "none" with a page-rounded MaxInt64.
const unlimitedV1 = 1 << 62

// readLimit parses a cgroup limit file; "max", a huge value, or no file mean no limit (0).
func readLimit(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v <= 0 || v >= unlimitedV1 {
		return 0
	}
	return v
}
