package startpages

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Release unmaps the pages of the executable's read-only mappings (see the package comment). It
// is safe to call at any time and from any goroutine; code that runs meanwhile faults its
// pages back in.
func Release() (Result, error) {
	var res Result
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return res, fmt.Errorf("startpages: %w", err)
	}
	if v, _ := statusField(status, "TracerPid"); v != 0 {
		return res, ErrTraced
	}
	ranges, err := executableRanges()
	if err != nil {
		return res, err
	}
	if len(ranges) == 0 {
		return res, errors.New("startpages: no read-only mapping of the executable in /proc/self/maps")
	}
	res.FileBefore = fileRSS(status)
	res.Ranges = len(ranges)
	for _, r := range ranges {
		res.Bytes += int64(r.end - r.start)
		if errno := madvise(r.start, r.end-r.start, unix.MADV_DONTNEED); errno != 0 {
			return res, fmt.Errorf("startpages: madvise(%#x, %d, MADV_DONTNEED): %w", r.start, r.end-r.start, errno)
		}
	}
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		res.FileAfter = fileRSS(status)
	}
	return res, nil
}

func madvise(addr, length uintptr, advice int) syscall.Errno {
	_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, addr, length, uintptr(advice))
	return errno
}

type addrRange struct{ start, end uintptr }

// executableRanges lists the read-only mappings of the file the process runs: those of the file
// (device and inode, as /proc/self/maps shows them) mapped where this package's own code is. A
// stat of /proc/self/exe is not the key: on overlayfs (containers) older kernels show the
// underlying layer's device and inode in the maps and the overlay's in a stat.
func executableRanges() ([]addrRange, error) {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil, fmt.Errorf("startpages: %w", err)
	}
	return parseMaps(maps, reflect.ValueOf(Release).Pointer())
}

// parseMaps picks, from /proc/PID/maps, the mappings of the file mapped at pc that are neither
// writable nor shared.
//
//	00400000-01562000 r-xp 00000000 fe:00 9978257    /usr/local/bin/eventide
func parseMaps(maps []byte, pc uintptr) ([]addrRange, error) {
	type mapping struct {
		r             addrRange
		perms, fileID string // fileID: "major:minor inode"
	}
	var all []mapping
	key := ""
	for line := range strings.Lines(string(maps)) {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("startpages: bad mapping %q in /proc/self/maps", f[0])
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("startpages: bad mapping %q in /proc/self/maps", f[0])
		}
		m := mapping{r: addrRange{uintptr(start), uintptr(end)}, perms: f[1], fileID: f[3] + " " + f[4]}
		if m.r.start <= pc && pc < m.r.end {
			if f[4] == "0" {
				return nil, errors.New("startpages: the code runs from an anonymous mapping")
			}
			key = m.fileID
		}
		all = append(all, m)
	}
	if key == "" {
		return nil, fmt.Errorf("startpages: no mapping holds the code at %#x", pc)
	}
	var out []addrRange
	for _, m := range all {
		if m.fileID != key {
			continue
		}
		if p := m.perms; len(p) != 4 || p[0] != 'r' || p[1] != '-' || p[3] != 'p' {
			continue // writable (.data: its written pages exist nowhere else), shared, or unreadable
		}
		out = append(out, m.r)
	}
	return out, nil
}

// fileRSS is the resident memory of file mappings in a /proc/PID/status: RssFile, plus RssShmem
// for a binary on tmpfs.
func fileRSS(status []byte) int64 {
	f, _ := statusField(status, "RssFile")
	m, _ := statusField(status, "RssShmem")
	return f + m
}

// statusField reads a "Key:   N kB" (or "Key: N") line of /proc/self/status, in bytes for kB.
func statusField(status []byte, key string) (int64, bool) {
	for line := range strings.Lines(string(status)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != key {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0, false
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		if len(f) > 1 && f[1] == "kB" {
			n <<= 10
		}
		return n, true
	}
	return 0, false
}
