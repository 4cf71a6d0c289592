//go:build race

package engine_test

// raceEnabled: the race detector slows byte loops ~30×; the 1 GiB test runs without it.
const raceEnabled = true
