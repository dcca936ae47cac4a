//go:build !linux

package eventlog

import "time"

func (l *Log) reclaimMapped(dir string, every time.Duration) { l.reclaimWG.Done() }
