//go:build race

package ctsync

const raceEnabled = true
