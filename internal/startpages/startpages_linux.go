package startpages

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
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

// executableRanges lists the read-only mappings of the file the process runs, found by device
// and inode (its path may say "(deleted)" after an upgrade replaced the binary).
func executableRanges() ([]addrRange, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return nil, fmt.Errorf("startpages: %w", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil, fmt.Errorf("startpages: %w", err)
	}
	return parseMaps(maps, unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), uint64(st.Ino)) // Dev and Ino differ in width by architecture
}

// parseMaps picks, from /proc/PID/maps, the mappings of the file (major:minor, inode) that are
// neither writable nor shared.
//
//	00400000-01562000 r-xp 00000000 fe:00 9978257    /usr/local/bin/eventide
func parseMaps(maps []byte, major, minor uint32, ino uint64) ([]addrRange, error) {
	var out []addrRange
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		if i, err := strconv.ParseUint(f[4], 10, 64); err != nil || i != ino {
			continue
		}
		maj, min, ok := strings.Cut(f[3], ":")
		if !ok {
			continue
		}
		if m, err := strconv.ParseUint(maj, 16, 32); err != nil || uint32(m) != major {
			continue
		}
		if m, err := strconv.ParseUint(min, 16, 32); err != nil || uint32(m) != minor {
			continue
		}
		perms := f[1]
		if len(perms) != 4 || perms[0] != 'r' || perms[1] != '-' || perms[3] != 'p' {
			continue // writable (.data: its written pages exist nowhere else), shared, or unreadable
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("startpages: bad mapping %q in /proc/self/maps", f[0])
		}
		out = append(out, addrRange{uintptr(start), uintptr(end)})
	}
	return out, sc.Err()
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
