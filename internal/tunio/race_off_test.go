//go:build !race

package tunio

const raceEnabled = false
