package testbed_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the stacks the tests and benchmarks start leave no
// goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
