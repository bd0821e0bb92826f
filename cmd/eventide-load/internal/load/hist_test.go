package load

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

func TestBucketsAreContiguous(t *testing.T) {
	// Every bucket starts one past the previous one's end, and bucketOf agrees with bucketRange.
	var next int64
	for i := range numBuckets {
		lo, hi := bucketRange(i)
		if lo != next {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, next)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d = [%d, %d] but bucketOf gives %d and %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if i >= subCount && float64(hi-lo+1)/float64(lo) > 1.0/halfCount {
			t.Fatalf("bucket %d = [%d, %d] is wider than 1/%d of its values", i, lo, hi, halfCount)
		}
		next = hi + 1
	}
	if next != 1<<maxBits {
		t.Fatalf("buckets end at %d, want 2^%d", next, maxBits)
	}
	if bucketOf(1<<50) != numBuckets-1 || bucketOf(-5) != 0 {
		t.Fatal("out-of-range values must land in the first and last buckets")
	}
}

func TestQuantiles(t *testing.T) {
	t.Run("UniformMicroseconds", func(t *testing.T) {
		h := NewHist()
		for i := 1; i <= 10000; i++ { // 1µs .. 10ms, one each
			h.Record(time.Duration(i) * time.Microsecond)
		}
		for _, c := range []struct {
			q    float64
			want time.Duration
		}{
			{0.5, 5000 * time.Microsecond},
			{0.95, 9500 * time.Microsecond},
			{0.99, 9900 * time.Microsecond},
			{0.999, 9990 * time.Microsecond},
			{1, 10000 * time.Microsecond},
		} {
			got := h.Quantile(c.q)
			if got < c.want || float64(got-c.want)/float64(c.want) > 1.0/halfCount {
				t.Errorf("p%g = %v, want %v (+0.2%%)", c.q*100, got, c.want)
			}
		}
		if h.Max() != 10*time.Millisecond || h.Min() != time.Microsecond {
			t.Errorf("min, max = %v, %v", h.Min(), h.Max())
		}
		if want := 5000500 * time.Nanosecond; h.Mean() != want {
			t.Errorf("mean = %v, want %v", h.Mean(), want)
		}
		if h.Count() != 10000 {
			t.Errorf("count = %d", h.Count())
		}
	})
	t.Run("SmallValuesExact", func(t *testing.T) {
		h := NewHist()
		for _, v := range []int{7, 3, 9, 1, 5} {
			h.Record(time.Duration(v))
		}
		if h.Quantile(0.5) != 5 || h.Quantile(0.2) != 1 || h.Quantile(0.21) != 3 || h.Quantile(1) != 9 || h.Quantile(0.6) != 5 {
			t.Errorf("p50 %v p20 %v p21 %v p100 %v", h.Quantile(0.5), h.Quantile(0.2), h.Quantile(0.21), h.Quantile(1))
		}
	})
	t.Run("NearestRankExact", func(t *testing.T) {
		// 100 values 1..100ns: the p-th percentile is exactly p, with no float noise in q·n.
		h := NewHist()
		for i := 1; i <= 100; i++ {
			h.Record(time.Duration(i))
		}
		for p := 1; p <= 100; p++ {
			if got := h.Quantile(float64(p) / 100); got != time.Duration(p) {
				t.Errorf("p%d = %d", p, got)
			}
		}
	})
	t.Run("Empty", func(t *testing.T) {
		h := NewHist()
		if h.Quantile(0.99) != 0 || h.Max() != 0 || h.Mean() != 0 {
			t.Error("an empty histogram reports zeros")
		}
	})
	t.Run("AgainstSortedSamples", func(t *testing.T) {
		// Log-normal latencies around 2ms with a long tail: every quantile is within 0.2% above
		// the exact nearest-rank answer from the sorted samples.
		r := rand.New(rand.NewPCG(1, 2))
		h := NewHist()
		vals := make([]int64, 200000)
		for i := range vals {
			vals[i] = int64(math.Exp(r.NormFloat64()*1.2) * 2e6)
			h.Record(time.Duration(vals[i]))
		}
		sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
		for _, q := range []float64{0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 0.9999, 1} {
			exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
			got := int64(h.Quantile(q))
			if got < exact || float64(got-exact)/float64(exact) > 1.0/halfCount {
				t.Errorf("p%g = %d, exact %d", q*100, got, exact)
			}
		}
	})
	t.Run("Merge", func(t *testing.T) {
		a, b := NewHist(), NewHist()
		for i := 1; i <= 50; i++ {
			a.Record(time.Duration(i) * time.Millisecond)
			b.Record(time.Duration(i+50) * time.Millisecond)
		}
		a.Merge(b)
		if a.Count() != 100 || a.Min() != time.Millisecond || a.Max() != 100*time.Millisecond {
			t.Fatalf("merged count %d min %v max %v", a.Count(), a.Min(), a.Max())
		}
		if p := a.Quantile(0.5); p < 50*time.Millisecond || p > 50*time.Millisecond+50*time.Millisecond/halfCount {
			t.Errorf("merged p50 = %v", p)
		}
	})
}

func TestHistMemoryIsFixed(t *testing.T) {
	h := NewHist()
	before := len(h.counts)
	for i := range 1_000_000 {
		h.Record(time.Duration(i) * 997)
	}
	h.Record(time.Hour)
	if len(h.counts) != before || h.Max() != time.Hour {
		t.Fatalf("buckets %d -> %d, max %v", before, len(h.counts), h.Max())
	}
}

func TestSlope(t *testing.T) {
	t.Run("KnownLine", func(t *testing.T) {
		// RSS growing 0.75 MiB/min from 120 MiB, sampled every 5 s for 8 minutes.
		var xs, ys []float64
		for s := 0.0; s <= 480; s += 5 {
			xs = append(xs, s/60)
			ys = append(ys, 120+0.75*s/60)
		}
		got, err := Slope(xs, ys)
		if err != nil || math.Abs(got-0.75) > 1e-9 {
			t.Fatalf("slope = %v, %v; want 0.75", got, err)
		}
	})
	t.Run("NoiseAroundFlat", func(t *testing.T) {
		// A sawtooth (GC cycles) with no trend has slope ~0 over whole periods.
		var xs, ys []float64
		for i := range 96 {
			xs = append(xs, float64(i)/12)
			ys = append(ys, 200+float64(i%8))
		}
		got, err := Slope(xs, ys)
		if err != nil || math.Abs(got) > 0.2 {
			t.Fatalf("slope = %v, %v; want about 0", got, err)
		}
	})
	t.Run("KnownFit", func(t *testing.T) {
		// (0,1) (1,3) (2,2) (3,5): slope = 1.1 exactly.
		got, err := Slope([]float64{0, 1, 2, 3}, []float64{1, 3, 2, 5})
		if err != nil || math.Abs(got-1.1) > 1e-12 {
			t.Fatalf("slope = %v, %v; want 1.1", got, err)
		}
	})
	t.Run("LargeOffsets", func(t *testing.T) {
		// Unix seconds and byte counts: centred sums keep the precision.
		var xs, ys []float64
		for i := range 100 {
			xs = append(xs, 1.7e9+float64(i)*5)
			ys = append(ys, 3e9-float64(i)*5*1024)
		}
		got, err := Slope(xs, ys)
		if err != nil || math.Abs(got+1024) > 1e-6 {
			t.Fatalf("slope = %v, %v; want -1024", got, err)
		}
	})
	t.Run("ErrTooFewPoints", func(t *testing.T) {
		if _, err := Slope([]float64{1}, []float64{2}); err != ErrTooFewPoints {
			t.Errorf("one point: %v", err)
		}
		if _, err := Slope([]float64{1, 1, 1}, []float64{2, 3, 4}); err != ErrTooFewPoints {
			t.Errorf("equal x: %v", err)
		}
	})
}
