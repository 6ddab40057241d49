package checkpoint_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The writer runs goroutines: none may outlive the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
