package load

import (
	"errors"
	"math"
)

// ErrTooFewPoints is returned by Slope when the points do not determine a line.
var ErrTooFewPoints = errors.New("a slope needs at least two points with different x")

// Slope fits y = a + b·x to the points by ordinary least squares and returns b. It returns
// ErrTooFewPoints when there are fewer than two points or all x are equal.
func Slope(xs, ys []float64) (float64, error) {
	n := min(len(xs), len(ys))
	if n < 2 {
		return 0, ErrTooFewPoints
	}
	var mx, my float64
	for i := range n {
		mx += xs[i]
		my += ys[i]
	}
	mx /= float64(n)
	my /= float64(n)
	// Centred sums: no cancellation when x is a Unix time or y a byte count.
	var sxy, sxx float64
	for i := range n {
		dx := xs[i] - mx
		sxy += dx * (ys[i] - my)
		sxx += dx * dx
	}
	if sxx == 0 || math.IsNaN(sxx) {
		return 0, ErrTooFewPoints
	}
	return sxy / sxx, nil
}
