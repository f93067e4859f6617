//go:build !race

package ctsync

const raceEnabled = false
