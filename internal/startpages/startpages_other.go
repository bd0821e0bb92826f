//go:build !linux

package startpages

// Release does nothing where the process's mappings cannot be read this way.
func Release() (Result, error) { return Result{}, ErrUnsupported }
