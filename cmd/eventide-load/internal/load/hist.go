// Package load is the measuring half of eventide-load: a bounded-memory latency histogram, a
// recorder that sorts outcomes into latencies and error classes, the closed- and open-loop
// runners, and the least-squares slope the soak is judged by.
package load

import (
	"math"
	"math/bits"
	"time"
)

// The histogram is log-linear, as HDR histograms are: values below subCount nanoseconds each have
// a bucket of their own; above, every power of two is split into halfCount equal buckets, so a
// bucket is at most 1/halfCount (0.2%) of its values wide. Values from 2^maxBits ns (18 min) up
// share the last bucket; Max stays exact.
const (
	subBits    = 10
	subCount   = 1 << subBits
	halfCount  = subCount / 2
	maxBits    = 40
	maxShift   = maxBits - subBits
	numBuckets = subCount + maxShift*halfCount
)

// Hist is a latency histogram of fixed size (128 KiB) whatever the number of values, with a
// relative error of at most 0.2% on every quantile. The zero value is not usable: call NewHist.
// A Hist is not safe for concurrent use.
type Hist struct {
	counts   []uint64
	n        uint64
	sum      float64 // nanoseconds
	min, max int64
}

// NewHist returns an empty histogram.
func NewHist() *Hist { return &Hist{counts: make([]uint64, numBuckets)} }

// bucketOf is the index of the bucket holding v nanoseconds; negative values count as 0.
func bucketOf(v int64) int {
	if v < subCount {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - subBits // v has subBits+shift bits, shift >= 1
	if shift > maxShift {
		return numBuckets - 1
	}
	m := int(v >> shift) // the top subBits bits: [halfCount, subCount)
	return subCount + (shift-1)*halfCount + (m - halfCount)
}

// bucketRange is the smallest and largest value that bucketOf puts in bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < subCount {
		return int64(i), int64(i)
	}
	j := i - subCount
	shift := j/halfCount + 1
	m := int64(j%halfCount + halfCount)
	return m << shift, (m+1)<<shift - 1
}

// Record adds one value.
func (h *Hist) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds every value of o to h.
func (h *Hist) Merge(o *Hist) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of values recorded.
func (h *Hist) Count() uint64 { return h.n }

// Min is the smallest value recorded, exactly; 0 when empty.
func (h *Hist) Min() time.Duration { return time.Duration(h.min) }

// Max is the largest value recorded, exactly; 0 when empty.
func (h *Hist) Max() time.Duration { return time.Duration(h.max) }

// Mean is the arithmetic mean, exactly; 0 when empty.
func (h *Hist) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the value at quantile q (0 < q <= 1): the smallest recorded value v such that
// at least q of all values are <= v (the nearest-rank definition), reported as the top of its
// bucket and never above Max. It is within 0.2% above the exact answer. 0 when empty.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	// q·n is not exact in binary (0.95 × 10000 = 9500.000000000002): round that noise away
	// before taking the ceiling.
	rank := uint64(math.Ceil(q*float64(h.n) - 1e-9))
	rank = min(max(rank, 1), h.n)
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			_, hi := bucketRange(i)
			return time.Duration(min(max(hi, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}
