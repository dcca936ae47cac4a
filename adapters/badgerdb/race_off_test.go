//go:build !race

package badgerdb

const raceEnabled = false
